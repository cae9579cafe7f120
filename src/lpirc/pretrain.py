"""Teacher-labelled pretraining (the entry's Open Images idea): the teacher labels an unlabeled pool,
the student first learns the teacher's soft labels on the pool, then fine-tunes on the labelled split.

One arm x seed is one pure task (:func:`train_arm_point`); :func:`sweep_arms` runs the grid on
lpirc.grid. The arms:

- ``a``: no teacher, fine-tuning only (plain training);
- ``b``: distillation on the labelled split only;
- ``b+``: the same-steps control: distillation on the labelled split for as many extra optimizer
  steps as the largest pool arm spends on the pool, so "pretraining helped" is not "trained longer";
- ``c``: pretraining on a pool of ``multiplier`` x the labelled split's size, then ``b``'s fine-tuning.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lpirc import claims, data, distill, stats
from lpirc.grid import run_grid
from lpirc.report import plural


def arms(alpha: float, pool_multipliers, finetune_epochs: int, pretrain_epochs: int) -> list[dict]:
    """The arms of the grid: name, alpha of the fine-tuning, pool multiplier, fine-tuning epochs."""
    extra = int(round(pretrain_epochs * max(pool_multipliers, default=0)))
    out = [{"arm": "a: no teacher", "arm_alpha": 0.0, "multiplier": 0.0, "epochs": finetune_epochs},
           {"arm": "b: distillation only", "arm_alpha": alpha, "multiplier": 0.0, "epochs": finetune_epochs}]
    if extra > 0:
        out.append({"arm": f"b+: distillation, +{extra} epochs (same steps)", "arm_alpha": alpha,
                    "multiplier": 0.0, "epochs": finetune_epochs + extra})
    out += [{"arm": f"c: pretrain {m:g}x pool", "arm_alpha": alpha, "multiplier": float(m), "epochs": finetune_epochs}
            for m in pool_multipliers]
    return out


def label_pool(teacher_path, x_train, x_pool, cache_dir):
    """The teacher's logits for the labelled split and for the unlabeled pool (cached files), and a
    one-row description of the pool: its size, the labelling time, the teacher's mean confidence and
    how many classes it uses. Returns (description DataFrame, train logits file, pool logits file)."""

    t0 = time.perf_counter()
    train_file, _ = distill.teacher_logits_file(teacher_path, x_train, cache_dir)
    pool_file, _ = distill.teacher_logits_file(teacher_path, x_pool, cache_dir)
    seconds = time.perf_counter() - t0
    logits = np.load(pool_file)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    info = pd.DataFrame([{"pool images": len(x_pool), "labelled train images": len(x_train),
                          "teacher": Path(teacher_path).stem, "labelling time (s)": seconds,
                          "mean teacher confidence": float(p.max(1).mean()),
                          f"classes the teacher uses (of {logits.shape[1]})": int(len(np.unique(np.argmax(logits, 1))))}])
    return info, train_file, pool_file


def train_arm_point(*, out_dir: str, data_dir: str, student_path: str, train_logits_path: str,
                    pool_logits_path: str, arm: str, arm_alpha: float, multiplier: float, epochs: int, seed: int,
                    pretrain_epochs: int, temperature: float, batch_size: int, learning_rate: float,
                    representative_size: int, init: str = "trained", int8: bool = False) -> dict:
    """Pretrain (when ``multiplier`` > 0) and fine-tune one student; float top-1 (and int8 when ``int8``);
    files in out_dir."""

    clock = distill.Clock()
    splits, classes = data.load_splits(Path(data_dir))
    x_train, y_train = splits.pop("train")
    x_pool, _ = data.load_split(Path(data_dir), "extra")        # its generator labels are never used
    logits_train, logits_pool = np.load(train_logits_path), np.load(pool_logits_path)
    model = distill.fresh_student(student_path, seed, init)
    n_pool = min(len(x_pool), int(round(multiplier * len(x_train))))
    clock.lap("build")
    t0 = time.perf_counter()
    if n_pool > 0:
        order = np.random.default_rng(seed).permutation(len(x_pool))[:n_pool]
        distill.train_student(model, x_pool[order], np.zeros(n_pool, np.int64), logits_pool[order], alpha=1.0,
                              temperature=temperature, epochs=pretrain_epochs, batch_size=batch_size,
                              learning_rate=learning_rate, verbose=0)
    distill.train_student(model, x_train, y_train, logits_train if arm_alpha > 0 else None, alpha=arm_alpha,
                          temperature=temperature, epochs=epochs, batch_size=batch_size,
                          learning_rate=learning_rate, verbose=0)
    wall = time.perf_counter() - t0
    clock.lap("train")
    row = distill.finish_student(model, Path(out_dir), x_train, splits, len(classes), seed, representative_size, int8,
                                 clock)
    return {"arm": arm, "pool_images": n_pool, "finetune_epochs": epochs, "seed": int(seed), **row, "wall_s": wall,
            "timing_s": clock.laps}


def sweep_arms(out_dir: Path, data_dir: Path, student_path: Path, train_logits_path: Path, pool_logits_path: Path,
               *, alpha: float, pool_multipliers, seeds, pretrain_epochs: int, finetune_epochs: int,
               temperature: float, batch_size: int, learning_rate: float, representative_size: int,
               init: str = "trained", int8: bool = False, scheduler: str | None = None, report: Path | None = None):
    """Every arm x seed as a task on lpirc.grid; a DataFrame of rows in arm order. Every arm uses the
    same seeds, so a seed gives the same data order in every arm (paired differences)."""

    points = [dict(out_dir=str(Path(out_dir) / f"arm{i}_s{s}"), data_dir=str(data_dir), student_path=str(student_path),
                   train_logits_path=str(train_logits_path), pool_logits_path=str(pool_logits_path), seed=int(s),
                   pretrain_epochs=pretrain_epochs, temperature=temperature, batch_size=batch_size,
                   learning_rate=learning_rate, representative_size=representative_size, init=init, int8=int8, **arm)
              for i, arm in enumerate(arms(alpha, pool_multipliers, finetune_epochs, pretrain_epochs)) for s in seeds]
    return pd.DataFrame(run_grid(train_arm_point, points, label="open_images", scheduler=scheduler, report=report))


def against_controls(runs, agg):
    """The largest pool arm, the control it is judged against (b+, the same-steps control, when the grid
    has it; else b) and every arm's paired differences against b+ and b per split (lpirc.stats)."""

    big = agg[agg.arm.str.startswith("c")].sort_values("pool images").iloc[-1].arm
    b = next(a for a in agg.arm if a.startswith("b:"))
    control = next((a for a in agg.arm if a.startswith("b+")), b)
    tests = pd.concat([stats.paired_differences(runs, f"{s}_top1", "arm", ref).assign(split=s)
                       for ref in dict.fromkeys([control, b]) for s in ("val", "holdout")], ignore_index=True)
    return tests, big, control


def step_note(n_train: int, n_pool: int, pool_multipliers, pretrain_epochs: int, batch_size: int) -> str:
    """The open-images chapter's first exercise, from the parameters: the optimizer steps the largest pool
    arm spends pretraining against the extra steps :func:`arms` gives the same-steps control b+ (an epoch of
    n images is ceil(n / batch) steps, the last batch partial, as lpirc.models.fit_cosine trains)."""
    m = max(pool_multipliers, default=0)
    used = min(n_pool, int(round(m * n_train)))
    extra = int(round(pretrain_epochs * m))
    per_pool, per_train = math.ceil(used / batch_size), math.ceil(n_train / batch_size)
    pool_steps, control_steps = pretrain_epochs * per_pool, extra * per_train
    diff = control_steps - pool_steps
    capped = (f" (the pool holds only {n_pool:,}, fewer than {m:g} x {n_train:,})" if used < int(round(m * n_train))
              else "")
    return (f"Arm c at {m:g}x pretrains on {used:,} pool images{capped} for {plural(pretrain_epochs, 'epoch')}: "
            f"{pretrain_epochs} x ceil({used:,} / {batch_size}) = **{plural(pool_steps, 'step')}** at batch {batch_size}. "
            f"`pretrain.arms` gives b+ round({pretrain_epochs} x {m:g}) = {plural(extra, 'extra epoch')} on the labelled "
            f"split: {extra} x ceil({n_train:,} / {batch_size}) = **{plural(control_steps, 'step')}**. "
            + ("The same number of steps." if diff == 0 else
               f"So b+ takes {plural(abs(diff), 'step')} {'more' if diff > 0 else 'fewer'} than the pretraining: "
               + ("every pass over a split ends with a partial batch, and b+ makes more passes over a smaller split, so "
                  "it matches the pool's images, not exactly its steps"
                  if not capped and extra * n_train == pretrain_epochs * used else
                  "the extra epochs are rounded from the multiplier and do not follow the pool's actual size")
               + f" ({100 * abs(diff) / max(pool_steps, 1):.1f}% of the pretraining's steps)."))


def verdict_rule(claim, pairs: dict) -> str:
    """How the pretraining claim's verdict, and the sensitivity table's at each smallest effect, follow from
    the intervals (lpirc.claims.gain_claim with lpirc.claims.superiority_verdict, the rule criteria/claims.yaml
    states): ``claim`` what :func:`lpirc.claims.pretraining_helps` returned for ``pairs`` (split -> (pretrained,
    control) top-1 by seed); each split's interval is recomputed here as the claim computes it."""
    ci = {name: claims.t_interval(100 * (np.asarray(a, float) - np.asarray(b, float)), claim.confidence)
          for name, (a, b) in pairs.items()}
    shown = "; ".join(f"{name} [{lo:+.2f}, {hi:+.2f}]" for name, (lo, hi) in ci.items())

    def why(m):
        below = [name for name, (_, hi) in ci.items() if hi < m]
        if below:
            return f"{' and '.join(below)} {'lies' if len(below) == 1 else 'lie'} wholly below m"
        zero = [name for name, (lo, _) in ci.items() if not lo > 0]
        rest = (f"{' and '.join(zero)} {'reaches' if len(zero) == 1 else 'reach'} zero" if zero
                else "every one lies above zero")
        return f"no interval lies wholly below m (the lowest upper bound is {min(hi for _, hi in ci.values()):+.2f}) and {rest}"
    groups: dict = {}
    for m, v in claim.sensitivity.items():
        groups.setdefault((why(m), v), []).append(f"{m:g}")
    return (f"**How the verdict is read.** Each split's gain has the test's {100 * claim.confidence:g}% interval "
            f"(two-sided, Bonferroni over {plural(len(ci), 'comparison')}): {shown} points. At a smallest effect of "
            f"interest m (the criterion's is {plural(claims.margin(claim.id), 'point')}), a split's gain is *not "
            "reproduced* when its whole interval lies below m (any gain is too small to matter), *reproduced* when its "
            "interval lies above zero and not wholly below m, and *inconclusive* otherwise; the claim is not reproduced "
            "if any split is, reproduced if every split is. So *reproduced* at m means a gain is shown and a gain of m "
            "is not ruled out — not that the gain is at least m. In the table: "
            + "; ".join(f"at {', '.join(ms[:-1]) + ' and ' if ms[:-1] else ''}{ms[-1]}, {reason}: {v}"
                        for (reason, v), ms in groups.items()) + ".")
