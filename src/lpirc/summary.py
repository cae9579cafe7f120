"""The summary chapter's table: one row per model of the study, each beside its same-budget control.

Everything is read from the steps' results files. Accuracy is the embedded task's. Latency:

- the 32x32 student's own single-thread latency on this host, from the benchmark step's one latency
  table (a file timed in two tables: the first); rows that are a mean over seeds have no file;
- the Pixel 2 latency of the *equivalent challenge architecture* (MobileNet v1 1.0 @160 in the default
  profile, same precision and factorization): Google's published figure for an unfactorized
  architecture, ratio transfer (published x host ratio measured interleaved) for a factorized one.
  The student itself gets no Pixel 2 number.

The score combines the embedded accuracy with that Pixel 2 latency: an illustration of the rule on
another task, ranked only against the other rows of this table.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lpirc import bench, claims, data, evaluate, projection, reference
from lpirc.results import read_json


def _seeds(n) -> str:
    return f"{int(n)} seed" + ("" if int(n) == 1 else "s")


def _seed_interval(row) -> tuple[float, float]:
    """A seed mean's 95% t-interval (lpirc.stats.aggregate's half-width), as (low, high) top-1."""
    half = row.val_top1_ci95 if np.isfinite(row.val_top1_ci95) else 0.0
    return (row.val_top1 - half, row.val_top1 + half)


def _wilson(top1: float, n: int):
    return claims.wilson(round(top1 * n), n)


def study_rows(results: Path, parameters: dict):
    """The summary table (a DataFrame) from ``results`` (results/<profile>/) and the run's parameters."""
    results = Path(results)
    M = {s: read_json(results / s / "metrics.json") for s in
         ("quantization", "factorization", "distillation", "open_images", "stacked")}
    n_val = read_json(results / "data" / "dataset.json")["splits"]["val"]["n"]
    latency = pd.read_csv(results / "benchmark" / "tables" / "latency.csv").drop_duplicates("file").set_index("file")
    q, f, d, o, st = (M[s] for s in ("quantization", "factorization", "distillation", "open_images", "stacked"))
    ca = q["challenge_architecture"]
    pub = {p: reference.pixel2_ms(ca["width_multiplier"], ca["resolution"], p) for p in ("int8", "float32")}
    v = pd.read_csv(results / "quantization" / "tables" / "variants.csv").set_index("key").to_dict(orient="index")
    P = parameters
    base_ep = P["baseline"]["epochs"]

    def published(p):
        return {"pixel2_ms": pub[p], "ci95": (pub[p], pub[p]), "method": "published"}

    timing = pd.read_csv(results / "benchmark" / "tables" / "latency.csv")
    transfer_sd = read_json(results / "benchmark" / "metrics.json").get("transfer_error", {}).get("sd_log", 0.0)

    def transferred(file, reference):
        """Published x the benchmark table's ratio for the pair, with the transfer error across hardware."""
        ratio, lo, hi = bench.pair_ratio(timing, file, reference)
        return projection.ratio_transfer(pub["int8"], ratio, (lo, hi), transfer_sd)

    def host_us(step, rel):
        """The file's latency (µs) and the group it was timed in (the first that timed it), or (nan, "")."""
        key = f"{step}/{rel}" if rel else None
        return (1000 * latency.latency_ms[key], latency.group[key]) if key in latency.index else (np.nan, "")

    sweep = pd.DataFrame(f["student"]["sweep"])
    deep = sweep[sweep.K == sweep.K.max()].sort_values("rank_fraction").iloc[0]
    arch = pd.DataFrame(f["challenge_architecture"]["rows"]).set_index("config")
    d_agg, o_agg = pd.DataFrame(d["aggregated"]), pd.DataFrame(o["aggregated"])
    d_best = d_agg[(d_agg.alpha == d["best"]["alpha"]) & (d_agg.teacher == d["best"]["teacher"])].iloc[0]
    d_ctrl = d_agg[d_agg.alpha == 0].iloc[0]
    o_big, o_ctrl = (o_agg[o_agg.arm == o[k]].iloc[0] for k in ("largest_pool_arm", "control"))
    stages = pd.DataFrame(st["stages"])
    stacked, start = stages.iloc[-1], stages.iloc[1]
    rows = [
        ("float baseline (Keras float32)", v["keras"]["val_top1"], v["keras"]["holdout_top1"],
         f"{base_ep}", "–", np.nan, None, published("float32")),
        ("int8 PTQ", v["int8_ptq"]["val_top1"], v["int8_ptq"]["holdout_top1"], f"{base_ep}", "float32 TFLite",
         v["float32"]["val_top1"], host_us("quantization", v["int8_ptq"]["file"]), published("int8")),
        ("int8 QAT", v["int8_qat"]["val_top1"], v["int8_qat"]["holdout_top1"],
         f"{base_ep} + {P['quantization']['qat_epochs']} QAT", "float32 TFLite", v["float32"]["val_top1"],
         host_us("quantization", v["int8_qat"]["file"]), published("int8")),
        (f"factorized ({deep.config}, int8)", deep.val_top1, deep.holdout_top1, f"{base_ep} + per-layer FT",
         *(("unfactorized int8, same-steps FT", f["control"]["val_top1"]) if f.get("control") else
           ("unfactorized int8", sweep.val_top1.iloc[0])), host_us("factorization", deep.file),
         transferred(f"factorization/{arch.file[deep.config]}", f"factorization/{arch.file.iloc[0]}")),
        (f"distilled (α={d_best.alpha:g}, {d_best.teacher}: the best arm on validation; float32, mean of "
         f"{_seeds(d_best.seeds)})", d_best.val_top1,
         d_best.holdout_top1, f"{base_ep} + {P['distillation']['epochs']}", "α = 0, same epochs", d_ctrl.val_top1, None,
         published("float32"), _seed_interval(d_best)),
        (f"pretrained on the pool ({int(o_big['pool images'])} images; float32, mean of {_seeds(o_big.seeds)})",
         o_big.val_top1, o_big.holdout_top1,
         f"{base_ep} + {P['open_images']['pretrain_epochs']} on pool + {P['open_images']['finetune_epochs']}",
         f"arm {o['control']}", o_ctrl.val_top1, None, published("float32"), _seed_interval(o_big)),
        (f"stacked ({st['source']} + {len(st['factorized_layers'])} factorized layers + QAT, int8)", stacked.val_top1,
         stacked.holdout_top1, "start + per-layer FT + QAT", *stacked_control(results, st, start),
         host_us("stacked", stacked.file), transferred(*stacked_arch_pair(st, arch))),
    ]
    out = []
    for name, val, hold, budget, control, control_val, host, p2, *acc_ci in rows:
        us, timed_in = host if isinstance(host, tuple) else (np.nan, "")
        # one model: Wilson interval over the validation images; a mean over seeds: its t-interval over seeds
        acc = acc_ci[0] if acc_ci else _wilson(val, n_val)
        lo, hi = claims.score_interval(acc, p2["ci95"])
        out.append({"model": name, "val_top1": val, "val_top1_ci_low": acc[0], "val_top1_ci_high": acc[1],
                    "holdout_top1": hold, "labelled-data epochs": budget,
                    "control at same budget": control, "delta_vs_control": val - control_val,
                    "student_host_us": us, "student_timed_in": timed_in, "pixel2_ms": p2["pixel2_ms"], "pixel2_ci_low": p2["ci95"][0],
                    "pixel2_ci_high": p2["ci95"][1], "pixel2_method": p2["method"],
                    "score": reference.challenge_score(100 * val, p2["pixel2_ms"]), "score_ci_low": lo, "score_ci_high": hi})
    return pd.DataFrame(out)


def stacked_control(results: Path, st: dict, start) -> tuple[str, float]:
    """The stacked row's control at the same budget: the width control (the same student narrowed to its MACs
    and trained on as many images) when the run trained one, else its starting student."""
    ctl = st.get("width_control") or {}
    csv = Path(results) / "stacked" / "tables" / "width_control.csv"
    if ctl and csv.exists():
        return (f"width control (MobileNet v1 {ctl['width']:g}: same MACs, same training images), int8",
                float(pd.read_csv(csv).val_top1.iloc[0]))
    return "its starting student, int8 PTQ", start.val_top1


def stacked_arch_pair(st: dict, arch) -> tuple[str, str]:
    """The files whose ratio gives the stacked model's Pixel 2 latency: the factorization chapter's file of
    the same configuration of the challenge architecture when it timed one (the same layers at the same
    rank: one architecture, one ratio), else the stacked chapter's own pair."""
    same = f"last{len(st['factorized_layers'])}_r{st['rank_fraction']:g}"
    if same in arch.index:
        return f"factorization/{arch.file[same]}", f"factorization/{arch.file.iloc[0]}"
    rows = st["arch"]["rows"]
    return tuple(bench.results_relative(Path(), "stacked", rows[i]["file"]) for i in (1, 0))


def against_each(table) -> str:
    """Where the stacked model's (last row's) illustrative score interval lies against each other row's:
    wholly above, wholly below, or overlapping. No verdict: the score mixes the embedded task's accuracy
    with an ImageNet-size architecture's latency (the stacked claim is judged on one task in its chapter)."""
    s, others = table.iloc[-1], table.iloc[:-1]
    short = others.model.str.split(" \\(").str[0]
    above = short[s.score_ci_low > others.score_ci_high].tolist()
    below = short[s.score_ci_high < others.score_ci_low].tolist()
    overlap = [m for m in short if m not in above and m not in below]
    parts = [f"{what}: {', '.join(rows)}" for what, rows in (("wholly above", above), ("wholly below", below),
                                                              ("overlapping", overlap)) if rows]
    return ("On this table's illustrative score (embedded accuracy x the equivalent architecture's Pixel 2 latency, "
            "not a verdict), the stacked model's interval lies " + "; ".join(parts) + ".")


def stacked_claim(results: Path):
    """The stacked claim, judged on one task (lpirc.claims.stacked_on_task): the stacked int8 student
    against the plain int8 baseline student (the quantization chapter's PTQ file) and against the stacked
    chapter's width control (the same student narrowed to the stacked model's MACs, trained for the same
    number of images; ``width_control`` in the stacked step's metrics.json, empty when the run trained none), on the validation
    images, per image; the latency ratios from the benchmark's one timing table (:func:`lpirc.bench.pair_ratio`:
    per timing session, both files relative to the same first file), so each ratio is the table's own."""
    results = Path(results)
    latency = pd.read_csv(results / "benchmark" / "tables" / "latency.csv").set_index("file")
    v = pd.read_csv(results / "quantization" / "tables" / "variants.csv").set_index("key")
    base_file = f"quantization/{v.file['int8_ptq']}"
    st = read_json(results / "stacked" / "metrics.json")
    stacked_file = f"stacked/{st['file']}"
    ctl = st.get("width_control") or {}
    control_file = f"stacked/{ctl['file']}" if ctl else None
    ratio, lo, hi = bench.pair_ratio(latency, stacked_file, base_file)
    x, y = data.load_split(results / "data", "val")
    classes = len(read_json(results / "data" / "dataset.json")["classes"])
    correct = {f: evaluate.correct_on(results / f, x, y, classes)
               for f in (stacked_file, base_file, control_file) if f}
    if not control_file:
        return claims.stacked_on_task(correct[stacked_file], correct[base_file], ratio, (lo, hi))
    c_ratio, c_lo, c_hi = bench.pair_ratio(latency, stacked_file, control_file)
    return claims.stacked_on_task(correct[stacked_file], correct[base_file], ratio, (lo, hi), correct[control_file],
                                  c_ratio, (c_lo, c_hi), f"the width control (MobileNet v1 {ctl['width']:g}: "
                                  f"{ctl['MMACs']:.3f} MMACs to the stacked model's {ctl['target_MMACs']:.3f}, "
                                  f"{ctl['images']:,} training images to its {ctl['stacked_images']:,})")


RATIO_COLUMNS = ("file", "latency_ratio", "ratio_ci_low", "ratio_ci_high")
CONSISTENCY_COLUMNS = ["chapter", "table", "file", "reference", "chapter_ratio", "chapter_low", "chapter_high",
                       "benchmark_ratio", "benchmark_low", "benchmark_high", "inside", "agree"]


def chapter_ratios(results: Path):
    """Every latency ratio a chapter states for a pair of its files (its timing tables,
    :data:`lpirc.bench.CHAPTER_TIMINGS`), one row per (chapter, table, file, reference, ratio, interval). Paths
    are relative to results/<profile>/, as the benchmark's table names them."""
    results, rows = Path(results), []
    for step, name in bench.CHAPTER_TIMINGS:
        csv = results / step / "tables" / f"{name}.csv"
        t = pd.read_csv(csv) if csv.exists() else pd.DataFrame()
        if not set(RATIO_COLUMNS) <= set(t.columns):
            continue
        t = t.dropna(subset=["file", "latency_ratio"])
        files = [bench.results_relative(results, step, f) for f in t.file]
        for f, r in zip(files[1:], t.iloc[1:].itertuples()):
            rows.append({"chapter": step, "table": name, "file": f, "reference": files[0],
                         "chapter_ratio": r.latency_ratio, "chapter_low": r.ratio_ci_low, "chapter_high": r.ratio_ci_high})
    return pd.DataFrame(rows, columns=CONSISTENCY_COLUMNS[:7])


def _log_se(low, high):
    """The standard error of a ratio's logarithm, read off its 95% interval."""
    return (np.log(np.asarray(high, float)) - np.log(np.asarray(low, float))) / (2 * 1.96)


def ratio_consistency(results: Path):
    """Each chapter's stated ratio (:func:`chapter_ratios`) beside the ratio the summary reads for the same pair
    of files from the benchmark's table (:func:`lpirc.bench.pair_ratio`: the first group of the table that
    timed both, the sessions as the unit), for the pairs the table timed together. The benchmark collects the
    chapters' timings rather than timing their files again, so every stated ratio should be the table's own;
    a pair timed in two places would show here. ``inside``: the chapter's ratio lies within that 95% interval
    (the book's criterion); ``agree``: the two differ by less than 1.96 standard errors of their difference
    (logarithms), the fair test had they been two independent measurements."""
    results = Path(results)
    latency = pd.read_csv(results / "benchmark" / "tables" / "latency.csv")
    table = chapter_ratios(results)
    together = set()
    for _, g in (latency.groupby("group", sort=False) if "group" in latency.columns else [("", latency)]):
        together |= {(a, b) for a in g.file for b in g.file}
    table = table[[(a, b) in together for a, b in zip(table.file, table.reference)]].reset_index(drop=True)
    if table.empty:
        return pd.DataFrame(columns=CONSISTENCY_COLUMNS)
    bench_ratios = [bench.pair_ratio(latency, a, b) for a, b in zip(table.file, table.reference)]
    table["benchmark_ratio"], table["benchmark_low"], table["benchmark_high"] = (list(v) for v in zip(*bench_ratios))
    table["inside"] = (table.benchmark_low <= table.chapter_ratio) & (table.chapter_ratio <= table.benchmark_high)
    se = np.sqrt(_log_se(table.chapter_low, table.chapter_high) ** 2 + _log_se(table.benchmark_low, table.benchmark_high) ** 2)
    table["agree"] = np.abs(np.log(table.chapter_ratio / table.benchmark_ratio)) <= 1.96 * se
    return table[CONSISTENCY_COLUMNS]


def consistency_sentence(table) -> str:
    """The consistency table in one sentence, from its numbers."""
    if table.empty:
        return "No chapter states a ratio for a pair of files the benchmark timed."
    out = table[~table.inside.astype(bool)]
    worst = (table.chapter_ratio / table.benchmark_ratio - 1).abs().max()
    return (f"Of the {len(table)} ratios the chapters state for a pair of files, **{int(table.inside.sum())}** lie inside the "
            f"95% interval the summary reads for the same pair from the benchmark's table, and {int(table.agree.sum())} agree "
            f"with it within the two intervals' combined uncertainty; the largest gap between them is {100 * worst:.1f}% of "
            "the ratio (zero when the benchmark took the chapter's timing of the pair as it is, as it does for every pair a "
            "chapter timed)."
            + ("" if out.empty else " Outside: " + "; ".join(
                f"{r.file} / {r.reference} ({r.chapter}: {r.chapter_ratio:.3f}, benchmark: {r.benchmark_ratio:.3f} "
                f"[{r.benchmark_low:.3f}, {r.benchmark_high:.3f}])" for r in out.itertuples())
                + ". Where they differ, the summary's rows and verdicts use the benchmark's ratio."))


def latency_claims(results: Path, parameters: dict) -> list:
    """The two chapter claims that rest on a latency ratio, judged again with the benchmark table's ratio for
    the same pair of files (:func:`lpirc.bench.pair_ratio`), so the summary's verdicts quote one ratio per
    pair: *quantization* (the challenge architecture's int8 / float32 files; accuracy from the student's
    float32 and int8 PTQ files per validation image, as its chapter did) and *factorization latency* (the
    deepest uniform configuration of the challenge architecture / the unfactorized one)."""
    results = Path(results)
    timing = pd.read_csv(results / "benchmark" / "tables" / "latency.csv")
    q = read_json(results / "quantization" / "metrics.json")["challenge_architecture"]
    v = pd.read_csv(results / "quantization" / "tables" / "variants.csv").set_index("key")
    x, y = data.load_split(results / "data", "val")
    classes = len(read_json(results / "data" / "dataset.json")["classes"])
    correct = {k: evaluate.correct_on(results / "quantization" / v.file[k], x, y, classes)
               for k in ("float32", "int8_ptq")}
    ratio, lo, hi = bench.pair_ratio(timing, f"quantization/{q['int8']['file']}", f"quantization/{q['float32']['file']}")
    found = [claims.quantization(correct["float32"], correct["int8_ptq"], ratio, (lo, hi))]
    P = parameters["factorization"]
    files = read_json(results / "factorization" / "metrics.json")["challenge_architecture"]["files"]
    config = f"last{P['challenge_layers']}_r{min(P['challenge_rank_fractions']):g}"
    if config in files:
        ratio, lo, hi = bench.pair_ratio(timing, f"factorization/{files[config]}",
                                         f"factorization/{next(iter(files.values()))}")
        found.append(claims.factorization_latency(ratio, (lo, hi), config))
    return found
