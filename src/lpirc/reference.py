"""Published figures the book compares against (reference/*.csv), never mixed with measured ones."""
from __future__ import annotations

import pandas as pd

from lpirc.paths import project_root


def mobilenet_v1_published() -> pd.DataFrame:
    return pd.read_csv(project_root() / "reference" / "mobilenet_v1_published.csv")


def entry_figures() -> pd.DataFrame:
    return pd.read_csv(project_root() / "reference" / "entry_figures.csv")


def entry() -> dict:
    """The entry's own two figures (reference/entry_figures.csv): {"unfactorized": {"top1", "latency_ms"},
    "factorized": {...}} — quantized MobileNet v1 @160 before and after factorizing nine 1x1 layers."""
    rows = entry_figures()
    rows = rows[rows.label.str.startswith("the entry:")]
    if len(rows) != 2:
        raise ValueError("reference/entry_figures.csv must hold exactly two 'the entry:' rows (before, after)")
    before, after = (rows.iloc[i] for i in (0, 1))
    return {"unfactorized": {"top1": float(before.top1), "latency_ms": float(before.latency_ms)},
            "factorized": {"top1": float(after.top1), "latency_ms": float(after.latency_ms)}}


def published_row(width_multiplier: float, resolution: int) -> pd.Series:
    df = mobilenet_v1_published()
    sel = df[(df.width_multiplier == width_multiplier) & (df.resolution == resolution)]
    if sel.empty:
        raise KeyError(f"no published MobileNet v1 {width_multiplier}_{resolution}")
    return sel.iloc[0]


def pixel2_ms(width_multiplier: float, resolution: int, precision: str = "int8") -> float:
    """Google's published Pixel 2 latency of MobileNet v1 at this width and resolution (quantized for
    int8, float for float32); nan when that variant was not published."""
    try:
        row = published_row(width_multiplier, resolution)
    except KeyError:
        return float("nan")
    return float(row.pixel2_quant_ms if precision == "int8" else row.pixel2_float_ms)


def challenge_score(top1: float, latency_ms: float, budget_ms: float = 30.0) -> float:
    """LPIRC 2018 track 1: acc / max(30 x T, runtime) with runtime = T x per-image latency.

    Per image this is acc / max(30, latency_ms); scaled by 30 so a model at or under 30 ms scores
    its accuracy in percent (the entry's 67.3% at 43 ms -> 47.0)."""
    return top1 * budget_ms / max(budget_ms, latency_ms)


def imagenet_scores(grid) -> pd.DataFrame:
    """The challenge score of the ImageNet references, ranked: the published int8 MobileNet v1 grid (published
    top-1 and Pixel 2 latency; ``grid`` from lpirc.projection.time_grid adds this run's host latency) and the
    entry's own rows. Scores are only ranked within one task: the embedded students are not here."""
    g = grid[grid.precision == "int8"]
    ref = entry_figures()
    rows = pd.concat([pd.DataFrame({"model": [f"MobileNet v1 {w:g}_{r} int8 (Google)" for w, r in zip(g.width_multiplier, g.resolution)],
                                    "ImageNet top-1 (%)": g.imagenet_top1_published.values,
                                    "Pixel 2 (ms)": g.pixel2_ms_published.values, "host (ms, measured)": g.host_ms.values}),
                      pd.DataFrame({"model": ref.label, "ImageNet top-1 (%)": ref.top1, "Pixel 2 (ms)": ref.latency_ms})],
                     ignore_index=True).dropna(subset=["ImageNet top-1 (%)", "Pixel 2 (ms)"])
    rows["score"] = [challenge_score(a, ms) for a, ms in zip(rows["ImageNet top-1 (%)"], rows["Pixel 2 (ms)"])]
    return rows.sort_values("score", ascending=False, ignore_index=True)


def entry_latency_rows(columns: list[str], latency_column: str, ratio_column: str) -> pd.DataFrame:
    """The entry's own Pixel 2 latencies as two labelled reference rows with ``columns`` (other cells empty)."""
    e = entry()
    ratio = e["factorized"]["latency_ms"] / e["unfactorized"]["latency_ms"]
    rows = pd.DataFrame([{latency_column: e["unfactorized"]["latency_ms"], ratio_column: "1"},
                         {latency_column: e["factorized"]["latency_ms"], ratio_column: f"{ratio:.3f}"}], columns=columns)
    rows[columns[0]] = ["the entry: unfactorized (Pixel 2, reference)", "the entry: 9 layers factorized (Pixel 2, reference)"]
    return rows


def summary_rows() -> pd.DataFrame:
    """The ImageNet reference rows of the summary: the entry's figures and Google's MobileNet v1 1.0 @160, scored."""
    refs, pub = entry_figures(), published_row(1.0, 160)
    rows = pd.DataFrame([{"reference": r.label, "ImageNet top-1 (%)": r.top1, "Pixel 2 (ms)": r.latency_ms,
                          "source": f"{{cite}}`{r.bibkey}`"} for _, r in refs.iterrows()]
                        + [{"reference": f"MobileNet v1 1.0_160 {k} (Google)", "ImageNet top-1 (%)": a, "Pixel 2 (ms)": ms,
                            "source": "{cite}`tflite2018hosted`"}
                           for k, a, ms in (("float", pub.float_top1, pub.pixel2_float_ms),
                                            ("quantized", pub.quant_top1, pub.pixel2_quant_ms))])
    rows.insert(3, "score", [challenge_score(a, ms) for a, ms in zip(rows["ImageNet top-1 (%)"], rows["Pixel 2 (ms)"])])
    return rows.sort_values("score", ascending=False, ignore_index=True)
