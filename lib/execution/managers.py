"""Which job manager a deployment gets: this machine's (lib.execution.jobs) or, with
MNIST_STUDIO_RAY_ADDRESS set, a Ray cluster's (lib.execution.raycluster) for trainings and imports.
Without the setting nothing changes and Ray is never imported.
"""

from __future__ import annotations

from lib.execution import jobs, raycluster


def manager_for(active, environ=None):
    """The job manager for a profile (lib.store.profile.Profile) and the environment's settings."""
    local = jobs.manager_for(active)
    cluster = raycluster.settings(environ)
    if cluster is None:
        return local
    return raycluster.ClusterJobManager(
        cluster, local=local, current=active,
        max_active_per_session=active.limits.max_active_jobs_per_visitor if active.public else None,
        max_queue=active.limits.max_queue if active.public else None)
