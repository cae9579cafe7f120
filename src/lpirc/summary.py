"""The summary chapter's table: one row per model of the study, each beside its same-budget control.

Everything is read from the steps' results files. Accuracy is the embedded task's. Latency:

- the 32x32 student's own single-thread latency on this host, from the benchmark step's one latency
  table (so a file has one latency in the whole book); rows that are a mean over seeds have no file;
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


def _seeds(n) -> str:
    return f"{int(n)} seed" + ("" if int(n) == 1 else "s")


def _seed_interval(row) -> tuple[float, float]:
    """A seed mean's 95% t-interval (lpirc.stats.aggregate's half-width), as (low, high) top-1."""
    half = row.val_top1_ci95 if np.isfinite(row.val_top1_ci95) else 0.0
    return (row.val_top1 - half, row.val_top1 + half)


def _wilson(top1: float, n: int):
    from lpirc.claims import wilson

    return wilson(round(top1 * n), n)


def study_rows(results: Path, parameters: dict):
    """The summary table (a DataFrame) from ``results`` (results/<profile>/) and the run's parameters."""
    import pandas as pd

    from lpirc import projection, reference
    from lpirc.claims import score_interval
    from lpirc.results import read_json

    results = Path(results)
    M = {s: read_json(results / s / "metrics.json") for s in
         ("quantization", "factorization", "distillation", "open_images", "stacked")}
    n_val = read_json(results / "data" / "dataset.json")["splits"]["val"]["n"]
    latency = pd.read_csv(results / "benchmark" / "tables" / "latency.csv").set_index("file").latency_ms
    q, f, d, o, st = (M[s] for s in ("quantization", "factorization", "distillation", "open_images", "stacked"))
    ca = q["challenge_architecture"]
    pub = {p: reference.pixel2_ms(ca["width_multiplier"], ca["resolution"], p) for p in ("int8", "float32")}
    v = pd.read_csv(results / "quantization" / "tables" / "variants.csv").set_index("key").to_dict(orient="index")
    P = parameters
    base_ep = P["baseline"]["epochs"]

    def published(p):
        return {"pixel2_ms": pub[p], "ci95": (pub[p], pub[p]), "method": "published"}

    def transferred(ratio, ci):
        return projection.ratio_transfer(pub["int8"], ratio, tuple(ci))

    def host_us(step, rel):
        return 1000 * latency.get(f"{step}/{rel}", np.nan) if rel else np.nan

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
         "unfactorized int8", sweep.val_top1.iloc[0], host_us("factorization", deep.file),
         transferred(arch.latency_ratio[deep.config], (arch.ratio_ci_low[deep.config], arch.ratio_ci_high[deep.config]))),
        (f"distilled (α={d_best.alpha:g}, {d_best.teacher}; float32, mean of {_seeds(d_best.seeds)})", d_best.val_top1,
         d_best.holdout_top1, f"{base_ep} + {P['distillation']['epochs']}", "α = 0, same epochs", d_ctrl.val_top1, None,
         published("float32"), _seed_interval(d_best)),
        (f"pretrained on the pool ({int(o_big['pool images'])} images; float32, mean of {_seeds(o_big.seeds)})",
         o_big.val_top1, o_big.holdout_top1,
         f"{base_ep} + {P['open_images']['pretrain_epochs']} on pool + {P['open_images']['finetune_epochs']}",
         f"arm {o['control']}", o_ctrl.val_top1, None, published("float32"), _seed_interval(o_big)),
        (f"stacked ({st['source']} + {len(st['factorized_layers'])} factorized layers + QAT, int8)", stacked.val_top1,
         stacked.holdout_top1, "start + per-layer FT + QAT", "its starting student, int8 PTQ", start.val_top1,
         host_us("stacked", stacked.file), st["arch"]["pixel2"]),
    ]
    out = []
    for name, val, hold, budget, control, control_val, us, p2, *acc_ci in rows:
        # one model: Wilson interval over the validation images; a mean over seeds: its t-interval over seeds
        acc = acc_ci[0] if acc_ci else _wilson(val, n_val)
        lo, hi = score_interval(acc, p2["ci95"])
        out.append({"model": name, "val_top1": val, "val_top1_ci_low": acc[0], "val_top1_ci_high": acc[1],
                    "holdout_top1": hold, "labelled-data epochs": budget,
                    "control at same budget": control, "delta_vs_control": val - control_val,
                    "student_host_us": us, "pixel2_ms": p2["pixel2_ms"], "pixel2_ci_low": p2["ci95"][0],
                    "pixel2_ci_high": p2["ci95"][1], "pixel2_method": p2["method"],
                    "score": reference.challenge_score(100 * val, p2["pixel2_ms"]), "score_ci_low": lo, "score_ci_high": hi})
    return pd.DataFrame(out)


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
    against the plain int8 baseline student (the quantization chapter's PTQ file) on the validation
    images, per image; their latency ratio from the benchmark's one timing table (per timing session:
    stacked / baseline, both relative to the same first file), so the ratio is the table's own."""
    import json

    import pandas as pd

    from lpirc import bench, claims, data, evaluate
    from lpirc.results import read_json

    results = Path(results)
    latency = pd.read_csv(results / "benchmark" / "tables" / "latency.csv").set_index("file")
    v = pd.read_csv(results / "quantization" / "tables" / "variants.csv").set_index("key")
    base_file = f"quantization/{v.file['int8_ptq']}"
    stacked_file = f"stacked/{read_json(results / 'stacked' / 'metrics.json')['file']}"
    per_session = (np.asarray(json.loads(latency.session_ratios[stacked_file]))
                   / np.asarray(json.loads(latency.session_ratios[base_file])))
    ratio, lo, hi = bench.session_ratio(per_session)
    x, y = data.load_split(results / "data", "val")
    classes = len(read_json(results / "data" / "dataset.json")["classes"])
    correct = {f: evaluate.evaluate_arrays(results / f, x, y, classes)["predictions"] == y for f in (stacked_file, base_file)}
    return claims.stacked_on_task(correct[stacked_file], correct[base_file], ratio, (lo, hi))
