"""What this machine gives the process: usable cores, CPU features, and TensorFlow's threads set to match.

TensorFlow sizes its thread pools from the CPUs the process may be scheduled on,
not from a container's CPU quota: on a host with 16 cores and a 2-CPU cgroup limit
(Streamlit Community Cloud, Docker `--cpus`) it starts 16 busy threads that the
kernel throttles. `configure_threads()` sizes them from what is really available,
once, before TensorFlow starts its runtime. Pure Python except `configure_threads`.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
CPUINFO = Path("/proc/cpuinfo")
# CPU flags of native bfloat16 math (Intel Cooper Lake / Sapphire Rapids, AMD Zen 4).
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# Inter-op threads run independent ops side by side; a Keras step is mostly one chain
# of ops, and on a small CPU every extra busy thread steals time from the math.
MAX_INTER_OP_THREADS = 2

_configured: dict | None = None


def available_cores(*, affinity: int | None = None, cgroup_root: Path | str = CGROUP_ROOT) -> int:
    """CPUs this process can really use: its CPU affinity, capped by a cgroup v2 or v1 CPU quota."""
    if affinity is None:
        affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cpu_quota(cgroup_root)
    cores = affinity if quota is None else min(affinity, math.ceil(quota))
    return max(1, cores)


def cgroup_cpu_quota(cgroup_root: Path | str = CGROUP_ROOT) -> float | None:
    """The CPU quota in CPUs (1.5 = one and a half), or None when there is no limit."""
    root = Path(cgroup_root)
    v2 = _read(root / "cpu.max")  # cgroup v2: "max 100000" or "200000 100000"
    if v2:
        parts = v2.split()
        if len(parts) == 2 and parts[0] != "max":
            return _ratio(parts[0], parts[1])
        return None
    for folder in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):  # cgroup v1: quota -1 means no limit
        quota = _read(root / folder / "cpu.cfs_quota_us")
        period = _read(root / folder / "cpu.cfs_period_us")
        if quota and period:
            return _ratio(quota, period)
    return None


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags, from /proc/cpuinfo text (x86 `flags`, ARM `Features`)."""
    if cpuinfo is None:
        cpuinfo = _read(CPUINFO) or ""
    flags = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return flags


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True where the CPU computes bfloat16 natively; elsewhere TensorFlow emulates it, ~4x slower."""
    return bool(cpu_flags(cpuinfo) & set(BF16_FLAGS))


def thread_plan(cores: int) -> dict:
    """Intra-op threads (inside one op, e.g. a convolution) and inter-op threads for `cores` CPUs."""
    return {"cores": cores, "intra_op": cores, "inter_op": min(MAX_INTER_OP_THREADS, cores)}


def configure_threads(cores: int | None = None) -> dict:
    """Size TensorFlow's thread pools to the usable cores; call before TensorFlow runs any op.

    Only the first call acts (TensorFlow fixes its pools when its runtime starts);
    later calls return what was set. If TensorFlow already started, its own sizes
    stay and the plan says so in `applied`.
    """
    global _configured
    if _configured is not None:
        return _configured
    import tensorflow as tf

    plan = thread_plan(cores or available_cores())
    try:
        tf.config.threading.set_intra_op_parallelism_threads(plan["intra_op"])
        tf.config.threading.set_inter_op_parallelism_threads(plan["inter_op"])
        plan["applied"] = True
    except RuntimeError:  # the runtime is already running with its default pools
        plan["applied"] = False
    _configured = plan
    return plan


def import_tensorflow_quietly():
    """Import TensorFlow without its C++ start-up notices on stderr; for the command line.

    Where oneDNN's custom operations switch on (CPUs with AVX512 or AMX), TensorFlow's C++
    prints "oneDNN custom operations are on ..." through absl before any log level applies,
    so TF_CPP_MIN_LOG_LEVEL cannot stop it, and a CLI error would no longer be one line.
    Python errors still raise. Process-wide: not for a server's threads.
    """
    if "tensorflow" not in sys.modules:
        with silenced_stderr_fd():
            import tensorflow  # noqa: F401
    return sys.modules["tensorflow"]


@contextlib.contextmanager
def silenced_stderr_fd():
    """File descriptor 2 (what C++ code writes to) goes to /dev/null inside the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _ratio(quota: str, period: str) -> float | None:
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:
        return None
    if quota_us <= 0 or period_us <= 0:
        return None
    return quota_us / period_us
