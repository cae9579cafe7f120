"""Wall time of one profile's distillation grid: serial, process pool and Dask LocalCluster, in one session.

    .venv/bin/python tools/grid_speedup.py --profile default [--seeds 0 1]

Needs the profile's data and baseline results (``lpirc run --profile P --only data baseline``). Runs
the distillation step's grid (every alpha x teacher x seed of the profile's parameters) three times with
``lpirc.distill.sweep``: ``scheduler='serial'`` (one task at a time, one thread), ``'local'`` (one
single-threaded worker process per core) and ``'dask-local'`` (a Dask LocalCluster of one single-threaded
worker per core). Writes ``results/<profile>/grid_speedup/speedup.json`` (the wall times, the ratios,
whether the rows agree, the CPU) and the Dask run's performance report (task timeline) next to it. Training runs go to a scratch folder
that is removed afterwards; the step's own results are not touched.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from lpirc import data, distill, paths, runinfo
from lpirc.results import write_json
from lpirc.runner.config import resolve_parameters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--seeds", type=int, nargs="+", help="a subset of the profile's seeds (default: all of them)")
    ap.add_argument("--schedulers", nargs="+", default=["serial", "local", "dask-local"],
                    help="which to time; the first is the reference of the ratios (default: serial local dask-local)")
    args = ap.parse_args()

    root = paths.project_root()
    results = paths.results_dir(args.profile, root)
    data_dir, models_dir = results / "data", results / "baseline" / "models"
    if not (data_dir / "dataset.json").exists() or not (models_dir / "student.keras").exists():
        raise SystemExit(f"no data or baseline results for profile {args.profile!r}: run "
                         f"`lpirc run --profile {args.profile} --only data baseline` first")
    p = resolve_parameters(root, args.profile)[0]["distillation"]
    if args.seeds:
        p["seeds"] = args.seeds
    x_train, _ = data.load_split(data_dir, "train")
    logits = {t: distill.teacher_logits_file(models_dir / f"{t}.keras", x_train,
                                             results / "cache" / "teacher_logits")[0] for t in p["teachers"]}
    out = results / "grid_speedup"
    out.mkdir(parents=True, exist_ok=True)
    walls, frames = {}, {}
    for scheduler in args.schedulers:
        scratch = Path(tempfile.mkdtemp(prefix=f"grid-{scheduler}-"))
        try:
            t0 = time.perf_counter()
            frames[scheduler] = distill.sweep(
                scratch, data_dir, models_dir / "student.keras", logits, alphas=p["alphas"], seeds=p["seeds"],
                temperature=p["temperature"], epochs=p["epochs"], batch_size=p["batch_size"],
                learning_rate=p["learning_rate"], representative_size=p["representative_size"],
                scheduler=scheduler, report=out / "dask_report.html" if scheduler == "dask-local" else None)
            walls[scheduler] = time.perf_counter() - t0
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        print(f"{scheduler}: {walls[scheduler]:.1f} s for {len(frames[scheduler])} tasks", flush=True)
    cols = ["alpha", "teacher", "seed", "weights_sha256", "val_top1", "int8_val_top1"]
    first = args.schedulers[0]
    same = all(frames[first][cols].equals(frames[s][cols]) for s in args.schedulers[1:])
    record = {"profile": args.profile, "tasks": len(frames[first]), "seeds": p["seeds"],
              **{f"{s.replace('-', '_')}_s": walls[s] for s in args.schedulers},
              **{f"speedup_{first}_over_{s.replace('-', '_')}": walls[first] / walls[s] for s in args.schedulers[1:]},
              "rows_identical": bool(same), "cpu": runinfo.cpu_info(), **runinfo.git_state(root), "parameters": p}
    write_json(out / "speedup.json", record)
    print(", ".join(f"{first} / {s} = {walls[first] / walls[s]:.2f}x" for s in args.schedulers[1:])
          + f"; rows identical: {same}")


if __name__ == "__main__":
    main()
