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

import math
from pathlib import Path

import numpy as np
import pandas as pd
from statsmodels.regression.linear_model import OLS
from scipy import stats

from lpirc import bench, reference
from lpirc.conversion import convert, convert_architectures, random_representative
from lpirc.models import keras


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

    int8: AMX (TDPBSSD: a 16x64 by 64x16 int8 tile product, 16,384 MACs, one every 16 cycles) 1024,
    which XNNPACK's int8 kernels use where the CPU has it (Intel Sapphire Rapids and later);
    AVX-512 VNNI (VPDPBUSD, 64 int8 MACs per 512-bit instruction) counted at one per cycle;
    AVX-VNNI or AVX2 32. float32: two FMA pipes of 16 (AVX-512) or 8 (AVX2) lanes. These are
    nominal peaks; the floor is a bound, not a prediction.
    """
    flags = set(flags)
    if precision == "int8":
        if "amx_int8" in flags:
            return 1024
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


def clock_mhz(cpu: dict) -> float | None:
    return cpu.get("max_mhz") or cpu.get("mhz")


def ratio_transfer(reference_ms: float, ratio: float, ratio_ci: tuple[float, float], transfer_sd_log: float = 0.0) -> dict:
    """Pixel 2 latency of a model *derived* from a reference architecture (factorized, QAT, stacked):
    the reference's Pixel 2 latency (published where available) x the host latency ratio
    model / reference measured interleaved. No MAC term on top: the measured ratio already holds what
    factorizing changed.

    The interval carries the ratio's interval (the published figure has none) and, when
    ``transfer_sd_log`` > 0, the error of carrying a host ratio over to the Pixel 2 (:func:`transfer_error`),
    added in quadrature on the log scale, the ratio's interval read as ±1.96 standard errors of its
    logarithm."""
    est = reference_ms * ratio
    lo, hi = ratio_ci
    if transfer_sd_log > 0 and np.isfinite(lo) and np.isfinite(hi) and lo > 0:
        se = math.sqrt((math.log(hi / lo) / (2 * 1.96)) ** 2 + transfer_sd_log ** 2)
        ci = (est * math.exp(-1.96 * se), est * math.exp(1.96 * se))
    else:
        ci = (reference_ms * lo, reference_ms * hi)
    return {"pixel2_ms": est, "ci95": ci, "method": "ratio transfer", "reference_ms": reference_ms,
            "transfer_sd_log": float(transfer_sd_log)}


def transfer_error(grid, precision: str = "int8", ratio_range: tuple[float, float] = (0.5, 1.0)) -> dict:
    """How far a ratio measured on this host misses the Pixel 2 ratio of the same two architectures, over the
    published grid (rows of :func:`time_grid` with ``host_ms`` and ``pixel2_ms_published``): for every pair
    of grid configurations of ``precision`` whose host ratio (faster / slower) lies in ``ratio_range``, the
    range derived models occupy, the log of (Pixel 2 ratio / host ratio). ``sd_log``, the root mean square
    of those errors, is what :func:`ratio_transfer` adds to a transferred interval."""
    g = grid[(grid.precision == precision) & grid.pixel2_ms_published.notna()]
    h, p = np.log(g.host_ms.to_numpy(float)), np.log(g.pixel2_ms_published.to_numpy(float))
    errors = [(p[i] - p[j]) - (h[i] - h[j]) for i in range(len(g)) for j in range(len(g))
              if i != j and ratio_range[0] <= math.exp(h[i] - h[j]) < ratio_range[1]]
    e = np.asarray(errors)
    return {"precision": precision, "pairs": int(len(e)), "ratio_range": list(ratio_range),
            "sd_log": float(np.sqrt(np.mean(e ** 2))) if len(e) else math.nan,
            "median_abs_pct": float(100 * np.median(np.abs(np.expm1(e)))) if len(e) else math.nan,
            "mean_log": float(e.mean()) if len(e) else math.nan}


# --------------------------------------------------------------------------------------------------
# the projection as a fitted model with a stated domain and prediction intervals (statsmodels OLS)
class OutsideDomain(ValueError):
    """A projection was asked for a model outside the range it was fitted on."""


def fit_projection(host_ms, macs, target_ms, precision: str, family: str = "MobileNet v1, unfactorized",
                   use_macs: bool | None = None) -> dict:
    """OLS fit of log(target ms) on log(host ms) (and log(MACs) with five points or more), per precision.

    The result is plain data (JSON-able): coefficients, their covariance and the residual variance for
    95% prediction intervals, and the **domain** — the precision, the architecture family and the MACs
    and host-latency ranges of the fitted points. :func:`project` refuses anything outside it."""
    host_ms, macs, target_ms = (np.asarray(v, dtype=float) for v in (host_ms, macs, target_ms))
    if use_macs is None:
        use_macs = len(host_ms) >= 5
    X = _design(host_ms, macs, use_macs)
    if len(host_ms) <= X.shape[1]:
        raise ValueError("need more points than coefficients to fit a projection with an interval")
    res = OLS(np.log(target_ms), X).fit()
    return {"precision": precision, "family": family, "use_macs": bool(use_macs), "coef": res.params.tolist(),
            "cov": res.cov_params().tolist(), "scale": float(res.scale), "df_resid": float(res.df_resid),
            "r2": float(res.rsquared), "points": int(len(host_ms)),
            "domain": {"macs": [float(macs.min()), float(macs.max())],
                       "host_ms": [float(host_ms.min()), float(host_ms.max())]}}


def in_domain(fit: dict, host_ms: float, macs: float, precision: str, family: str) -> bool:
    d = fit["domain"]
    return (precision == fit["precision"] and family == fit["family"]
            and d["macs"][0] <= macs <= d["macs"][1] and d["host_ms"][0] <= host_ms <= d["host_ms"][1])


def project(fit: dict, host_ms: float, macs: float, precision: str, family: str = "MobileNet v1, unfactorized") -> dict:
    """Projected latency with its 95% prediction interval; :class:`OutsideDomain` outside the fit's domain."""
    if not in_domain(fit, host_ms, macs, precision, family):
        d = fit["domain"]
        raise OutsideDomain(f"{precision} {family} at {host_ms:.3g} ms, {macs / 1e6:.3g} MMACs is outside the "
                            f"projection's domain ({fit['precision']} {fit['family']}, {d['host_ms'][0]:.3g}-"
                            f"{d['host_ms'][1]:.3g} ms, {d['macs'][0] / 1e6:.3g}-{d['macs'][1] / 1e6:.3g} MMACs)")
    x = _design(np.array([host_ms]), np.array([macs]), fit["use_macs"])[0]
    mean = float(x @ np.asarray(fit["coef"]))
    se = float(np.sqrt(x @ np.asarray(fit["cov"]) @ x + fit["scale"]))
    t = stats.t.ppf(0.975, fit["df_resid"])
    return {"pixel2_ms": float(np.exp(mean)), "ci95": (float(np.exp(mean - t * se)), float(np.exp(mean + t * se))),
            "method": "log-linear fit"}


# --------------------------------------------------------------------------------------------------
# the host's attainable peak, measured
PEAK_SHAPES = ((8, 8, 256), (8, 8, 512), (14, 14, 256), (16, 16, 128))
PEAK_DEPTH = 16


def measure_peak(precision: str, work_dir, runs: int = 30, shapes=PEAK_SHAPES, depth: int = PEAK_DEPTH) -> dict:
    """The host's attainable multiply-accumulate rate for ``precision``, measured.

    Each shape (H, W, C) is a chain of ``depth`` 1x1 convolutions C -> C on an H x W input — the GEMMs
    MobileNet spends its MACs in, from cache-resident to larger than the L2 cache, repeated so that the
    per-invoke overhead is amortised — converted with the same converter and timed with the same
    runtime, one thread, as every model of the book. A shape's rate is its MACs over its best run (the
    minimum, minus the per-invoke overhead timed in the same session); the peak is the highest rate.
    It is a bound from measurement: an operator that beat it would be faster than the same kernels'
    best on hot-cache GEMMs."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    paths = [bench.overhead_model(work / "overhead.tflite")]
    for h, w, c in shapes:
        x = inp = keras.Input((h, w, c))
        for _ in range(depth):
            x = keras.layers.Conv2D(c, 1, use_bias=False)(x)
        rep = random_representative((h, w, c), 4, 0)
        paths.append(convert(keras.Model(inp, x), precision, work / f"gemm_{precision}_{h}x{w}x{c}.tflite",
                                      rep if precision == "int8" else None).path)
    timed = bench.interleaved(paths, runs=runs, warmup=5)
    overhead = timed[0]["min_ms"]
    rates = [depth * h * w * c * c / max(t["min_ms"] - overhead, 1e-9) / 1e6 for (h, w, c), t in zip(shapes, timed[1:])]
    best = int(np.argmax(rates))
    return {"precision": precision, "gmacs_per_s": float(rates[best]), "shape": [*shapes[best], depth],
            "rates_gmacs_per_s": [float(r) for r in rates],
            "method": f"measured: best of chains of {depth} 1x1 convolutions, minimum over {runs} runs"}


# --------------------------------------------------------------------------------------------------
# the benchmark chapter's grid (notebooks/50_benchmark.ipynb)
def time_grid(widths, resolutions, out_dir, *, runs: int, seed: int, peak: dict, scheduler: str | None = None):
    """MobileNet v1 at every width x resolution, float32 and int8, random weights: converted as grid tasks,
    timed interleaved one width at a time, beside Google's published Pixel 2 latency and ImageNet top-1.
    ``peak``: {precision: measure_peak(...)} for each model's efficiency (floor / measured)."""
    jobs = [{"width_multiplier": w, "resolution": r, "classes": 1001, "precision": p, "seed": seed,
             "path": str(Path(out_dir) / f"mobilenet_v1_{w:g}_{r}_{p}.tflite")}
            for w in widths for r in resolutions for p in ("float32", "int8")]
    conv = pd.DataFrame(convert_architectures(jobs, label="benchmark grid", scheduler=scheduler))
    grid = pd.concat([bench.add_timing(conv[conv.width_multiplier == w].rename(columns={"path": "file"}), runs, 3)
                      for w in widths], ignore_index=True).rename(columns={"latency_ms": "host_ms"})
    pub = reference.mobilenet_v1_published()
    grid = grid.merge(pub[["width_multiplier", "resolution", "pixel2_float_ms", "pixel2_quant_ms", "float_top1",
                           "quant_top1"]], on=["width_multiplier", "resolution"], how="left")
    int8 = grid.precision == "int8"
    grid["pixel2_ms_published"] = np.where(int8, grid.pixel2_quant_ms, grid.pixel2_float_ms)
    grid["imagenet_top1_published"] = np.where(int8, grid.quant_top1, grid.float_top1)
    grid["efficiency"] = grid.macs / (grid.precision.map(lambda p: peak[p]["gmacs_per_s"]) * 1e6) / grid.host_ms
    return grid


def fit_grid(grid):
    """:func:`fit_projection` per precision on the published rows of ``grid`` (from :func:`time_grid`);
    returns (grid with in-sample projection, 95% prediction interval and leave-one-out error, {precision:
    fit}, a table of the fits)."""
    grid, fits, rows = grid.copy(), {}, []
    for p in ("int8", "float32"):
        g = grid[(grid.precision == p) & grid.pixel2_ms_published.notna()]
        fits[p] = fit = fit_projection(g.host_ms, g.macs, g.pixel2_ms_published, p)
        errs = leave_one_out(g.host_ms, g.macs, g.pixel2_ms_published, fit["use_macs"])
        proj = [project(fit, h, m, p) for h, m in zip(g.host_ms, g.macs)]
        grid.loc[g.index, "pixel2_ms_projected"] = [r["pixel2_ms"] for r in proj]
        grid.loc[g.index, "pi_low"] = [r["ci95"][0] for r in proj]
        grid.loc[g.index, "pi_high"] = [r["ci95"][1] for r in proj]
        grid.loc[g.index, "loo_error"] = errs
        rows.append({"precision": p, "points": len(g), "a": fit["coef"][0], "b (host)": fit["coef"][1],
                     "c (MACs)": fit["coef"][2] if fit["use_macs"] else float("nan"), "R²": fit["r2"],
                     "domain (MMACs)": "–".join(f"{v / 1e6:.1f}" for v in fit["domain"]["macs"]),
                     "domain (host ms)": "–".join(f"{v:.2f}" for v in fit["domain"]["host_ms"]),
                     "LOO median |error| (%)": 100 * float(np.median(np.abs(errs))),
                     "LOO max |error| (%)": 100 * float(np.max(np.abs(errs)))})
    return grid, fits, pd.DataFrame(rows)


def host_table(cpu: dict, clock: float, peak: dict):
    """The host as a two-column table: CPU, clock, and the measured peak beside the ISA's nominal one."""
    rows = [("CPU", cpu["model"]), ("logical CPUs", cpu["logical_cpus"]), ("clock reported by Linux (MHz)", f"{clock:.0f}")]
    for p, pk in peak.items():
        h, w, c, depth = pk["shape"]
        rows.append((f"{p} peak, measured (GMAC/s)", f"{pk['gmacs_per_s']:.1f} ({depth} chained 1x1 convolutions, {h}x{w}x{c})"))
        per_cycle, nominal = 1000 * pk["gmacs_per_s"] / clock, macs_per_cycle(cpu["flags"], p)
        note = ("" if not per_cycle > nominal else
                f" — above the nominal peak, so the core ran faster than the reported clock: at {nominal} MACs per cycle "
                f"it needed at least {1000 * pk['gmacs_per_s'] / nominal:.0f} MHz (turbo, or a virtual machine's fixed "
                "figure); the measured rate is the bound to trust")
        rows.append((f"{p} MACs per cycle at that clock: measured / nominal from the ISA flags",
                     f"{per_cycle:.1f} / {nominal}{note}"))
    return pd.DataFrame(rows, columns=["quantity", "value"])
