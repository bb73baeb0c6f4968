"""Usable cores from affinity and cgroup quotas, CPU flags, and precision `auto` choosing by them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lib.data import catalog, datasets
from lib.training import hardware, loop
from lib.training.config import TrainConfig

PROJECT_DIR = Path(__file__).resolve().parents[2]

INTEL_SPR = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
AMD_ZEN2 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n"
# A flag's name inside another line (here the model name) is not a flag.
MISLEADING = "model name\t: avx512_bf16 lookalike\nflags\t\t: fpu avx2\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd bf16\n"


def test_cpu_flags_are_read_from_the_flags_lines_only():
    assert {"avx512_bf16", "amx_bf16", "avx2"} <= hardware.cpu_flags(INTEL_SPR)
    assert hardware.cpu_flags(MISLEADING) == {"fpu", "avx2"}
    assert hardware.cpu_flags(ARM) == {"fp", "asimd", "bf16"}
    assert hardware.cpu_has_native_bf16(INTEL_SPR)
    assert not hardware.cpu_has_native_bf16(AMD_ZEN2)
    assert not hardware.cpu_has_native_bf16(MISLEADING)
    assert not hardware.cpu_has_native_bf16("")


def test_auto_precision_picks_by_the_cpu_flags_and_gpus_it_reads():
    assert loop.resolve_precision("auto", cpuinfo=INTEL_SPR, gpus=[]) == "mixed_bfloat16"
    assert loop.resolve_precision("auto", cpuinfo=AMD_ZEN2, gpus=[]) == "float32"
    # A GPU runs float16 natively: that wins whatever the CPU has.
    assert loop.resolve_precision("auto", cpuinfo=AMD_ZEN2, gpus=["/physical_device:GPU:0"]) == "mixed_float16"
    assert loop.resolve_precision("mixed", cpuinfo=INTEL_SPR, gpus=["/physical_device:GPU:0"]) == "mixed_float16"
    # Asked for explicitly, mixed is honoured even where it is emulated; float32 always is.
    assert loop.resolve_precision("mixed", cpuinfo=AMD_ZEN2, gpus=[]) == "mixed_bfloat16"
    assert loop.resolve_precision("float32", cpuinfo=INTEL_SPR, gpus=["gpu"]) == "float32"


def test_auto_precision_reads_this_machine_when_nothing_is_faked(monkeypatch, tmp_path):
    fake = tmp_path / "cpuinfo"
    fake.write_text(INTEL_SPR)
    monkeypatch.setattr(hardware, "CPUINFO", fake)
    assert loop.resolve_precision("auto", gpus=[]) == "mixed_bfloat16"
    fake.write_text(AMD_ZEN2)
    assert loop.resolve_precision("auto", gpus=[]) == "float32"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "200000 100000\n"}, 2.0),  # cgroup v2, --cpus=2
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),  # v2 without a limit
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3.0),  # cgroup v1
        ({"cpu,cpuacct/cpu.cfs_quota_us": "50000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, 0.5),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),  # v1 without a limit
        ({}, None),  # no cgroup files at all (macOS, Windows)
    ],
)
def test_cgroup_cpu_quota_reads_v2_and_v1(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert hardware.cgroup_cpu_quota(tmp_path) == expected


def test_available_cores_is_the_affinity_capped_by_the_quota(tmp_path):
    assert hardware.available_cores(affinity=16, cgroup_root=tmp_path) == 16  # no quota
    (tmp_path / "cpu.max").write_text("200000 100000\n")
    assert hardware.available_cores(affinity=16, cgroup_root=tmp_path) == 2  # Community Cloud-like
    assert hardware.available_cores(affinity=1, cgroup_root=tmp_path) == 1  # pinned to one CPU
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert hardware.available_cores(affinity=16, cgroup_root=tmp_path) == 2  # 1.5 CPUs: two threads share them
    (tmp_path / "cpu.max").write_text("10000 100000\n")
    assert hardware.available_cores(affinity=16, cgroup_root=tmp_path) == 1  # never zero
    assert hardware.available_cores() >= 1  # this machine


def test_thread_plan_uses_every_usable_core_inside_ops_and_few_between():
    assert hardware.thread_plan(1) == {"cores": 1, "intra_op": 1, "inter_op": 1}
    assert hardware.thread_plan(2) == {"cores": 2, "intra_op": 2, "inter_op": 2}
    assert hardware.thread_plan(16) == {"cores": 16, "intra_op": 16, "inter_op": 2}


def test_configure_threads_sets_tensorflows_pools_before_its_runtime_starts():
    # A fresh process: in this one another test may already have started TensorFlow.
    script = (
        "import json, tensorflow as tf\n"
        "from lib.training import hardware\n"
        "plan = hardware.configure_threads(3)\n"
        "tf.constant(1.0) + 1.0  # the runtime starts here, with the pools set above\n"
        "again = hardware.configure_threads(5)  # later calls keep the first plan\n"
        "print(json.dumps([plan, again, tf.config.threading.get_intra_op_parallelism_threads(),\n"
        "                  tf.config.threading.get_inter_op_parallelism_threads()]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT_DIR,
                          timeout=300, check=True)
    plan, again, intra, inter = json.loads(done.stdout.strip().splitlines()[-1])
    assert plan == again == {"cores": 3, "intra_op": 3, "inter_op": 2, "applied": True}
    assert (intra, inter) == (3, 2)


def test_training_configures_threads_before_building_the_model(monkeypatch, tiny_data_dir):
    calls = []
    monkeypatch.setattr(hardware, "configure_threads", lambda: calls.append("threads"))
    original_build = loop.architectures.build_model
    monkeypatch.setattr(loop.architectures, "build_model",
                        lambda *args, **kwargs: calls.append("build") or original_build(*args, **kwargs))
    data = datasets.prepare(catalog.load_dataset("mnist", tiny_data_dir), validation_split=0.0, limit=100)
    loop.train(TrainConfig(arch="softmax", epochs=1, validation_split=0.0), data)
    assert calls == ["threads", "build"]


def test_native_stderr_is_silenced_inside_the_block_and_restored_after():
    """What C++ writes to file descriptor 2 (TensorFlow's oneDNN notice on AVX512/AMX CPUs) is dropped
    inside the block; Python's and everything after it still reach stderr."""
    code = ("import os, sys\nfrom lib.training import hardware\n"
            "with hardware.silenced_stderr_fd():\n    os.write(2, b'native notice\\n')\n"
            "os.write(2, b'after\\n')\nprint('python', file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, check=True)
    assert done.stderr.splitlines() == ["after", "python"]


def test_the_cli_imports_tensorflow_without_its_start_up_notices():
    code = ("import sys\nfrom lib.training import hardware\ntf = hardware.import_tensorflow_quietly()\n"
            "print(tf.__name__, 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["tensorflow", "True"]
    assert done.stderr == ""
