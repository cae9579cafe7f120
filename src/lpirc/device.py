"""Benchmarking on a real Android phone over adb with TFLite's benchmark_model.

The challenge timed one big core of a Pixel 2. With a phone attached and a benchmark_model binary
built for it (TFLite's tools/benchmark, supplied by the user), ``bench_on_device`` pushes both,
pins the run to the big cores with ``taskset`` (f0 on a Pixel 2), runs one thread with operator
profiling, and parses the summary and the per-operator table into the same records as the host's.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path


class DeviceError(RuntimeError):
    pass


_TIMINGS = re.compile(r"Inference timings in us:\s*(.*)")
_PAIR = re.compile(r"([A-Za-z][A-Za-z ()]*?):\s*([0-9.eE+-]+)")


def parse_summary(text: str) -> dict:
    """'Inference timings in us: Init: 16772, First inference: 8781, Warmup (avg): 7514.93,
    Inference (avg): 7454.97' -> {"init_us": ..., "first_us": ..., "warmup_avg_us": ..., "avg_us": ...}"""
    m = None
    for m in _TIMINGS.finditer(text):
        pass
    if m is None:
        raise DeviceError("no 'Inference timings in us' line in the benchmark_model output")
    keys = {"Init": "init_us", "First inference": "first_us", "Warmup (avg)": "warmup_avg_us",
            "Inference (avg)": "avg_us"}
    out = {}
    for k, v in _PAIR.findall(m.group(1)):
        k = k.strip()
        if k in keys:
            out[keys[k]] = float(v)
    if "avg_us" not in out:
        raise DeviceError(f"could not read the average inference time from: {m.group(0)!r}")
    count = re.findall(r"count=(\d+) first=\d+ curr=\d+ min=(\d+) max=(\d+) avg=([0-9.]+) std=(\d+)", text)
    if count:
        n, mn, mx, avg, std = count[-1]
        out.update({"runs": int(n), "min_us": float(mn), "max_us": float(mx), "std_us": float(std)})
    out["avg_ms"] = out["avg_us"] / 1000
    return out


def parse_op_profile(text: str) -> list[dict]:
    """The 'Run Order' table of the regular benchmark runs ([start] column optional, old or new
    format). Returns one row per operator: op, avg_ms, percent, name."""
    marker = "Operator-wise Profiling Info for Regular Benchmark Runs"
    start = text.find(marker)
    section = text[start:] if start >= 0 else text
    lines = section.splitlines()
    try:
        head = next(i for i, line in enumerate(lines) if "Run Order" in line)
    except StopIteration:
        return []
    header = lines[head + 1]
    cols = re.findall(r"\[([^\]]+)\]", header)
    rows = []
    for line in lines[head + 2:]:
        if not line.strip() or line.strip().startswith("="):
            break
        body = re.sub(r"^.*?\]\s", "", line) if re.match(r"^\d{4}-\d\d-\d\d", line) else line
        fields = [f for f in re.split(r"\t+|\s{2,}", body.strip()) if f]
        if len(fields) < len(cols):
            # the name may contain single spaces; re-split on whitespace and join the tail
            parts = body.split()
            fields = parts[:len(cols) - 1] + [" ".join(parts[len(cols) - 1:])]
        rec = dict(zip(cols, fields))
        rows.append({"op": rec.get("node type"), "avg_ms": float(rec["avg ms"]),
                     "percent": float(rec["%"].rstrip("%")), "name": rec.get("Name", "").strip()})
    return rows


def _adb(serial: str | None, *args: str, timeout: int = 600) -> str:
    cmd = ["adb"] + (["-s", serial] if serial else []) + list(args)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise DeviceError(f"{' '.join(cmd)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def bench_on_device(model: str, benchmark_binary: str | None, serial: str | None = None,
                    cpu_mask: str = "f0", runs: int = 50) -> dict:
    if shutil.which("adb") is None:
        raise DeviceError("adb not found on PATH: install Android platform-tools to benchmark on a phone")
    if not benchmark_binary or not Path(benchmark_binary).exists():
        raise DeviceError("pass --benchmark-binary PATH: a TFLite benchmark_model built for the phone "
                          "(bazel build -c opt --config=android_arm64 tensorflow/lite/tools/benchmark:benchmark_model)")
    devices = [line.split()[0] for line in _adb(None, "devices").splitlines()[1:] if line.strip().endswith("device")]
    if not devices:
        raise DeviceError("no Android device attached (adb devices lists none); connect one and enable USB debugging")
    if serial and serial not in devices:
        raise DeviceError(f"device {serial} not attached; attached: {', '.join(devices)}")
    remote = "/data/local/tmp"
    _adb(serial, "push", benchmark_binary, f"{remote}/benchmark_model")
    _adb(serial, "shell", "chmod", "+x", f"{remote}/benchmark_model")
    _adb(serial, "push", model, f"{remote}/{Path(model).name}")
    out = _adb(serial, "shell", "taskset", cpu_mask, f"{remote}/benchmark_model",
               f"--graph={remote}/{Path(model).name}", "--num_threads=1", f"--num_runs={runs}",
               "--enable_op_profiling=true")
    return {"summary": parse_summary(out), "ops": parse_op_profile(out), "raw": out}
