"""From host latency to a Pixel 2 estimate, and the physical floor of a model on the host.

**Projection.** Google published single-big-core Pixel 2 latencies for the 16 MobileNet v1
variants (width x resolution, float and quantized). Timing the same architectures here gives 16
pairs per precision; a log-linear fit

    log(pixel2_ms) = a + b log(host_ms) + c log(MACs)

maps any host latency (with its MACs) to a *projected* Pixel 2 latency. Leave-one-out error says
how far to trust it. The published quantized column used 2018's uint8 kernels while the host runs
int8 XNNPACK kernels; the fit absorbs the average difference, not per-architecture quirks.

**Floor.** A core cannot do more than (MACs per cycle) x (clock) multiply-accumulates per second;
MACs / that rate is the lowest latency possible, and floor / measured is the efficiency.
"""
from __future__ import annotations

import numpy as np


def _design(host_ms, macs, use_macs: bool):
    cols = [np.ones(len(host_ms)), np.log(host_ms)]
    if use_macs:
        cols.append(np.log(macs))
    return np.stack(cols, axis=1)


def fit_loglinear(host_ms, macs, target_ms, use_macs: bool | None = None) -> np.ndarray:
    """Least-squares coefficients; ``use_macs=None`` drops the MAC term when there are fewer than
    five points (the smoke profile's tiny grid)."""
    host_ms, macs, target_ms = (np.asarray(v, dtype=float) for v in (host_ms, macs, target_ms))
    if use_macs is None:
        use_macs = len(host_ms) >= 5
    if len(host_ms) < (3 if use_macs else 2):
        raise ValueError("need at least as many points as coefficients to fit a projection")
    coef, *_ = np.linalg.lstsq(_design(host_ms, macs, use_macs), np.log(target_ms), rcond=None)
    return coef


def predict(coef: np.ndarray, host_ms, macs) -> np.ndarray:
    host_ms, macs = np.atleast_1d(np.asarray(host_ms, float)), np.atleast_1d(np.asarray(macs, float))
    return np.exp(_design(host_ms, macs, len(coef) == 3) @ coef)


def leave_one_out(host_ms, macs, target_ms, use_macs: bool | None = None) -> np.ndarray:
    """Relative error (predicted / actual - 1) of each point when the fit leaves it out."""
    host_ms, macs, target_ms = (np.asarray(v, dtype=float) for v in (host_ms, macs, target_ms))
    if use_macs is None:
        use_macs = len(host_ms) >= 6
    errs = []
    for i in range(len(host_ms)):
        keep = np.arange(len(host_ms)) != i
        coef = fit_loglinear(host_ms[keep], macs[keep], target_ms[keep], use_macs)
        errs.append(predict(coef, host_ms[i], macs[i])[0] / target_ms[i] - 1)
    return np.asarray(errs)


def macs_per_cycle(flags: list[str], precision: str) -> int:
    """Peak multiply-accumulates per cycle of one core, from its ISA flags.

    int8: AVX-512 VNNI (VPDPBUSD, 64 int8 MACs per 512-bit instruction) counted at one per cycle;
    AVX-VNNI or AVX2 32. float32: two FMA pipes of 16 (AVX-512) or 8 (AVX2) lanes. These are
    nominal peaks; the floor is a bound, not a prediction.
    """
    flags = set(flags)
    if precision == "int8":
        if "avx512_vnni" in flags:
            return 64
        if "avx_vnni" in flags or "avx2" in flags:
            return 32
        if "asimddp" in flags:
            return 32
        return 16
    if precision == "float32":
        if "avx512f" in flags:
            return 32
        if "avx2" in flags or "fma" in flags:
            return 16
        return 8
    raise ValueError(f"precision must be int8 or float32, got {precision!r}")


def floor_ms(macs: int, macs_per_cycle_: int, clock_mhz: float) -> float:
    return macs / (macs_per_cycle_ * clock_mhz * 1e6) * 1e3


def clock_mhz(cpu: dict) -> float | None:
    return cpu.get("max_mhz") or cpu.get("mhz")
