"""The deployment profile and its limits: `local` (one person) or `public` (a shared server).

Everything comes from the environment, so one code base serves a laptop and a
Streamlit Community Cloud app; there, root-level secrets (`MNIST_STUDIO_PROFILE =
"public"` in the app's secrets TOML) become these environment variables. In
`local` no limit applies and everything behaves as it always did. The defaults of
`public` let a visitor reproduce every tutorial lesson on MNIST: the longest is
50 epochs of softmax or the 648k-parameter MLP on 48,000 training images.

Each check returns a message a visitor can act on, or "" when all is well, and
runs before anything starts. (The job caps are enforced by lib.jobs.JobManager,
which checks and enqueues under one lock.)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields

from lib.i18n import _
from lib.models import architectures

LOCAL, PUBLIC = "local", "public"
PROFILES = (LOCAL, PUBLIC)
PROFILE_ENV = "MNIST_STUDIO_PROFILE"
MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What one visitor may use on a shared server; each field's environment setting is ENV[field]."""

    max_epoch_images: int = 3_000_000  # epochs x training images; the 50-epoch tutorials need 2.4 M
    max_params: int = 1_000_000  # the zoo's biggest tutorial model (mlp-1024) has 814 k
    max_active_jobs_per_visitor: int = 1  # queued or running
    max_queue: int = 8  # jobs waiting behind the running one, all visitors together
    workspace_quota_mb: int = 200  # a 1 M-parameter run takes ~12 MB on disk
    total_quota_mb: int = 2_000  # all workspaces together: Community Cloud disks are small
    idle_days: float = 7.0  # a workspace nobody opened for this long is deleted
    gallery_dir: str = ""  # an operator's folder of runs everyone sees read-only ("" = none)
    prewarm: int = 1  # 1: the server predicts the bundled model's test set when it starts; 0: at the first visit
    warm_worker: int = 1  # 1: a training process waits with TensorFlow imported (~12 s sooner to the first batch)


ENV = {
    "max_epoch_images": "MNIST_STUDIO_MAX_EPOCH_IMAGES",
    "max_params": "MNIST_STUDIO_MAX_PARAMS",
    "max_active_jobs_per_visitor": "MNIST_STUDIO_MAX_JOBS_PER_VISITOR",
    "max_queue": "MNIST_STUDIO_MAX_QUEUE",
    "workspace_quota_mb": "MNIST_STUDIO_WORKSPACE_QUOTA_MB",
    "total_quota_mb": "MNIST_STUDIO_TOTAL_QUOTA_MB",
    "idle_days": "MNIST_STUDIO_IDLE_DAYS",
    "gallery_dir": "MNIST_STUDIO_GALLERY_DIR",
    "prewarm": "MNIST_STUDIO_PREWARM",
    "warm_worker": "MNIST_STUDIO_WARM_WORKER",
}


class SettingError(ValueError):
    """An environment setting the app cannot use; the message names it and what it expects."""


@dataclass(frozen=True)
class Profile:
    name: str
    limits: Limits

    @property
    def public(self) -> bool:
        return self.name == PUBLIC


def current(environ=None) -> Profile:
    """The profile and limits the environment asks for (read each time: tests and servers may change it)."""
    environ = os.environ if environ is None else environ
    name = (environ.get(PROFILE_ENV) or LOCAL).strip().lower()
    if name not in PROFILES:
        raise SettingError(f"{PROFILE_ENV} is {name!r}; use 'local' (one person) or 'public' (a shared server).")
    values = {}
    for spec in fields(Limits):
        raw = environ.get(ENV[spec.name])
        if raw is None or raw.strip() == "":
            continue
        values[spec.name] = _parse(spec.name, raw.strip(), type(spec.default))
    return Profile(name, Limits(**values))


def _parse(field_name: str, raw: str, kind: type):
    if kind is str:
        return raw
    try:
        value = kind(float(raw)) if kind is int and float(raw).is_integer() else kind(raw)
    except ValueError:
        raise SettingError(f"{ENV[field_name]} is {raw!r}; it must be a number.") from None
    if value < 0 or (isinstance(value, float) and not math.isfinite(value)):
        raise SettingError(f"{ENV[field_name]} is {raw!r}; it must be 0 or more.")
    return value


def epoch_images(epochs: int, train_images: int, validation_split: float, limit: int | None = None) -> int:
    """Images a run trains on in total: epochs x the images left after the validation split."""
    used = min(train_images, limit) if limit else train_images
    return epochs * (used - int(round(used * validation_split)))


def check_training(profile: Profile, *, epochs: int, train_images: int, validation_split: float,
                   limit: int | None, params: int) -> str:
    """Why this run may not start here ("" if it may): the training budget and the model size."""
    if not profile.public:
        return ""
    limits = profile.limits
    total = epoch_images(epochs, train_images, validation_split, limit)
    if total > limits.max_epoch_images:
        per_epoch = max(total // max(epochs, 1), 1)
        most_epochs = limits.max_epoch_images // per_epoch
        return _("This run would train on {total:,} images ({epochs} epochs x {per_epoch:,}); this shared app allows "
                 "{allowed:,} per run. Use at most {most} epochs, or limit the training images.").format(
            total=total, epochs=epochs, per_epoch=per_epoch, allowed=limits.max_epoch_images, most=most_epochs)
    if params > limits.max_params:
        return _("This model has {params:,} parameters; this shared app allows {allowed:,}. Pick a smaller "
                 "architecture or fewer units or filters.").format(params=params, allowed=limits.max_params)
    return ""


def check_config(profile: Profile, config, info) -> str:
    """`check_training` for a TrainConfig on a dataset (lib.datasets.DatasetInfo): what the Train page
    shows before the button, and what the server checks again before the job trains."""
    if not profile.public:
        return ""
    rows = architectures.summarize(config.layer_specs, info.input_shape, info.num_classes)
    return check_training(profile, epochs=config.epochs, train_images=info.train_images,
                          validation_split=config.validation_split, limit=config.limit,
                          params=sum(row.params for row in rows))


def check_disk(profile: Profile, *, workspace_bytes: int, total_bytes: int, adding_bytes: int) -> str:
    """Why `adding_bytes` more may not be stored ("" if they may): the workspace and the total quota."""
    if not profile.public:
        return ""
    limits = profile.limits
    if workspace_bytes + adding_bytes > limits.workspace_quota_mb * MB:
        return _("Your workspace holds {held:,.1f} MB; this would add {adding:,.1f} MB and the limit is {limit:,} MB. "
                 "Download the runs you want to keep, then delete some.").format(
            held=workspace_bytes / MB, adding=adding_bytes / MB, limit=limits.workspace_quota_mb)
    if total_bytes + adding_bytes > limits.total_quota_mb * MB:
        return _("This shared app's storage is full ({used:,.0f} of {limit:,} MB). Download your runs and try again "
                 "later, or run MNIST Studio on your own computer.").format(used=total_bytes / MB,
                                                                           limit=limits.total_quota_mb)
    return ""


def describe(profile: Profile) -> list[str]:
    """The limits in words, as the Train page lists them."""
    if not profile.public:
        return []
    limits = profile.limits
    return [
        _("Up to {images:,} training images per run (epochs x images), e.g. {epochs} epochs on MNIST with a 0.2 "
          "validation split.").format(images=limits.max_epoch_images, epochs=limits.max_epoch_images // 48_000),
        _("Models up to {params:,} parameters.").format(params=limits.max_params),
        _("{jobs} training queued or running per visitor; at most {queue} waiting in all.").format(
            jobs=limits.max_active_jobs_per_visitor, queue=limits.max_queue),
        _("{quota:,} MB of runs per workspace; workspaces unused for {days:g} days are deleted.").format(
            quota=limits.workspace_quota_mb, days=limits.idle_days),
    ]
