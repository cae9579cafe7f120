"""Provenance: which code, packages and CPU produced a result."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import shutil
import subprocess
import threading
from importlib import metadata
from pathlib import Path

import psutil

PACKAGES = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert", "numpy",
            "pillow", "scikit-image", "pandas", "matplotlib", "papermill", "jupyter-book", "sphinx")
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
             "amx_int8", "asimd", "asimddp", "i8mm")


def git_state(root: Path) -> dict:
    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20)

    try:
        head = git("rev-parse", "HEAD")
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if head.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def package_versions(names=PACKAGES) -> dict[str, str | None]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def cpu_info() -> dict:
    """CPU model, ISA flags that matter for int8/float kernels, clock where Linux exposes it."""
    info = {"machine": platform.machine(), "model": platform.processor() or None, "flags": [],
            "logical_cpus": None, "max_mhz": None}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    flags: set[str] = set()
    seen: set[str] = set()
    count = 0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "processor":
            count += 1
        elif key == "model name" and "model name" not in seen:
            info["model"] = value
            seen.add(key)
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
        elif key == "cpu MHz" and info.get("mhz") is None:
            info["mhz"] = float(value)
    info["flags"] = [f for f in ISA_FLAGS if f in flags]
    # The tests relabel the host to check that names with '@', '(R)' and '(TM)' render everywhere.
    if label := os.environ.get("LPIRC_TEST_CPU_MODEL"):
        info["model"] = label
    info["logical_cpus"] = count or None
    try:
        khz = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text().strip()
        info["max_mhz"] = int(khz) / 1000
    except (OSError, ValueError):
        pass
    return info


def gpu_info() -> dict:
    """The NVIDIA GPUs ``nvidia-smi -L`` lists (without importing TensorFlow), and CUDA_VISIBLE_DEVICES."""
    found = []
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
            found = [line.strip() for line in out.splitlines() if line.startswith("GPU")]
        except (OSError, subprocess.SubprocessError):
            pass
    return {"gpus": found, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def host_record() -> dict:
    return {"hostname": platform.node(), "python": platform.python_version(),
            "platform": platform.platform(), "cpu": cpu_info(), "accelerators": gpu_info()}


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class PeakMemory:
    """The peak resident memory of this process and every process it started (a notebook's kernel, Dask
    workers), summed, sampled every ``interval`` s while the ``with`` block runs: ``.peak_mb``. Sampling
    can miss a spike shorter than the interval."""

    def __init__(self, interval: float = 0.25):
        self.interval, self.peak_mb = interval, 0.0

    def _sample(self) -> float:
        me = psutil.Process()
        total = 0
        for p in [me, *me.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:          # a process that ended between listing and reading
                pass
        return total / 2 ** 20

    def __enter__(self):
        self._stop = threading.Event()

        def loop():
            while not self._stop.is_set():
                self.peak_mb = max(self.peak_mb, self._sample())
                self._stop.wait(self.interval)
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False
