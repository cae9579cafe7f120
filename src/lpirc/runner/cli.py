"""Command line: ``lpirc run | status | steps | book | eval | bench | data``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lpirc.choices import PREPROCESS
from lpirc.runner import schema


def _cmd_run(args) -> int:
    from lpirc.paths import results_dir
    from lpirc.runner import execute

    force = True if args.force == [] else args.force
    if args.upstream_of:
        from lpirc.runner.steps import upstream

        args.only = sorted(upstream(args.upstream_of)) or None
        if args.only is None:
            print(f"{args.upstream_of!r} reads no other step's results")
            return 0
    execute.run(args.profile, only=args.only, start=args.start, overrides=args.set, force=force,
                scheduler=args.scheduler)
    results = results_dir(args.profile)
    print(f"\nresults in {results}; run.json records parameters, commit, versions, CPU and timings")
    return 0


def _cmd_status(args) -> int:
    from lpirc.runner import execute

    if args.explain:
        from lpirc.paths import project_root
        from lpirc.runner.cache import explain
        from lpirc.runner.steps import STEPS

        def names(steps):
            return "all steps" if len(steps) == len(STEPS) else ", ".join(steps) or "none"

        print("module: steps whose notebooks import it -> steps a change to it makes stale")
        for module, direct, stale in explain(project_root()):
            print(f"{module:26s} {names(direct)} -> {names(stale)}")
        return 0
    for name, state, why in execute.status(args.profile):
        print(f"{name:14s} {state:8s} {why}")
    return 0


def _cmd_steps(args) -> int:
    from lpirc.paths import project_root
    from lpirc.runner.config import SCHEMA_FILE, step_parameters
    from lpirc.runner.steps import steps_by_name

    print("Each step's parameters: type, allowed values (lpirc.runner.schema), default (the notebook's "
          "parameters cell).\nSet them in params/<profile>.yaml (global: or the step's section) or with "
          f"--set STEP.KEY=VALUE; editors can check a profile with {SCHEMA_FILE}.\n")
    for step, params in step_parameters(project_root()).items():
        s = steps_by_name()[step]
        model = schema.STEP_MODELS[step]
        print(f"{step}  ({s.notebook}; reads: {', '.join(s.reads) or '-'})")
        for name, type_, allowed, what in schema.field_rows(model):
            print(f"    {name:24s} {type_:18s} {allowed:34s} default {params[name].default!r}"
                  + (f"  ({what})" if what else ""))
    print("\nmodel specs (baseline.student; each of baseline.teachers also has a name, and may be frozen):")
    for arch, fields in schema.spec_rows():
        print(f"    arch: {arch}")
        for name, type_, allowed, default, what in fields:
            default = "required" if default == "required" else f"default {default!r}"
            print(f"        {name:20s} {type_:18s} {allowed:14s} {default}" + (f"  ({what})" if what else ""))
    print("\nprofile keys besides global: and the steps:")
    for name, type_, _, what in schema.field_rows(schema.ProfileKeys):
        print(f"    {name:24s} {type_:18s} {what or (schema.Budgets.__doc__ if name == 'budgets_s' else '')}")
    return 0


def _cmd_schema(args) -> int:
    from lpirc.paths import project_root
    from lpirc.runner.config import SCHEMA_FILE, json_schema_text

    root = project_root()
    text = json_schema_text(root)
    path = root / SCHEMA_FILE
    if args.write:
        path.write_text(text)
        print(f"wrote {path}")
        return 0
    if args.check:
        if not path.exists() or path.read_text() != text:
            print(f"lpirc: {SCHEMA_FILE} is out of date; regenerate it with `lpirc schema --write`", file=sys.stderr)
            return 1
        print(f"{SCHEMA_FILE} is up to date")
        return 0
    sys.stdout.write(text)
    return 0


def _cmd_book(args) -> int:
    from lpirc.runner import book

    index = book.build(args.profile)
    print(f"book built: open {index}")
    return 0


def _cmd_eval(args) -> int:
    from lpirc.evaluate import evaluate_source

    result = evaluate_source(args.model, Path(args.data), Path(args.labels) if args.labels else None,
                             limit=args.limit, split=args.split, skip_corrupt=args.skip_corrupt,
                             progress=not args.quiet, preprocess=args.preprocess, skip="pass --skip-corrupt")
    print(f"{args.model}: top-1 {result['top1']:.4f}  top-5 {result['top5']:.4f}  "
          f"on {result['n']} images ({result['layout']})")
    if result["skipped_corrupt"]:
        print(f"skipped {result['skipped_corrupt']} undecodable image(s)")
    if args.json:
        from lpirc.results import write_json
        write_json(args.json, result)
    return 0


def _cmd_import_weights(args) -> int:
    from lpirc.weights import import_to_keras

    rec = import_to_keras(args.model, args.out)
    print(f"{args.model} -> {rec['out']}: MobileNet v1 {rec['width_multiplier']:g} @{rec['resolution']}, "
          f"{rec['classes']} classes, {rec['params']:,} parameters")
    return 0


def _cmd_bench(args) -> int:
    from lpirc import bench, runinfo

    if args.adb:
        from lpirc import device
        rec = device.bench_on_device(args.model, args.benchmark_binary, serial=args.serial)
        print(json.dumps(rec["summary"], indent=2))
        return 0
    paths = [args.model] + ([args.vs] if args.vs else [])
    recs = bench.interleaved(paths, runs=args.runs, warmup=args.warmup)
    cpu = runinfo.cpu_info()
    print(f"CPU: {cpu['model']} ({', '.join(cpu['flags'])}); 1 thread, {args.runs} runs interleaved")
    for r in recs:
        print(f"{r['model']}: median {r['median_ms']:.3f} ms (p10 {r['p10_ms']:.3f}, p90 {r['p90_ms']:.3f})"
              + (f"  ratio {r['ratio_to_first']:.3f} [{r['ratio_ci95'][0]:.3f}, {r['ratio_ci95'][1]:.3f}]"
                 if r is not recs[0] else ""))
    if args.json:
        from lpirc.results import write_json
        write_json(args.json, {"host": runinfo.host_record(), "results": recs})
    return 0


def _cmd_profile(args) -> int:
    if args.command == "profile":
        print("lpirc: 'lpirc profile' is deprecated and will be removed in the next release; use "
              "'lpirc per-layer' (\"profile\" names a parameter set here)", file=sys.stderr)
    from lpirc import profiler, runinfo

    model = Path(args.model)
    if model.suffix == ".keras":
        # a Keras model saved by the pipeline: convert with the int8 recipe first
        from lpirc import conversion, models
        m = models.load_model(model)
        rep = conversion.random_representative(m.input_shape[1:], 16)
        out = Path(args.work_dir or model.parent) / f"{model.stem}_int8.tflite"
        model = conversion.convert(m, "int8", out, rep).path
        print(f"converted {args.model} to {model} (int8, random calibration: latency only)")
    prof = profiler.profile(model, runs=args.runs, prefixes=not args.no_prefix)
    units = profiler.keras_units(prof["ops"])
    print(f"CPU: {runinfo.cpu_info()['model']}; 1 thread; {args.runs} interleaved runs; "
          f"per-invoke overhead {prof['overhead_ms'] * 1000:.2f} us subtracted")
    print(f"{'#':>3} {'unit':24s} {'op':20s} {'MMACs':>8} {'ms':>8} {'share':>7} {'GMAC/s':>8}")
    for op, unit in zip(prof["ops"], units):
        print(f"{op['index']:3d} {unit:24s} {op['op']:20s} {op['macs'] / 1e6:8.2f} {op['single_ms']:8.4f} "
              f"{100 * op['share']:6.1f}% {op['gmacs_per_s']:8.1f}")
    print(f"whole model {prof['whole_ms']:.4f} ms; sum of operators {prof['sum_single_ms']:.4f} ms "
          f"({prof['sum_single_ms'] / prof['whole_ms']:.3f}x)"
          + (f"; prefix differencing {prof['sum_prefix_ms'] / prof['whole_ms']:.3f}x" if prof["sum_prefix_ms"] else ""))
    if args.json:
        from lpirc.results import write_json
        write_json(args.json, prof)
    return 0


def _cmd_data(args) -> int:
    from lpirc import manifest

    if args.data_cmd == "verify":
        report = manifest.verify(args.name, Path(args.path))
        print(report.summary())
        return 0 if report.ok else 1
    if args.data_cmd == "fetch":
        from lpirc import fetch
        if args.name != "open-images":
            print(f"lpirc: error: only 'open-images' can be fetched; {args.name!r} must be obtained by hand "
                  "(see data_manifest/)", file=sys.stderr)
            return 2
        report = fetch.fetch_open_images(args.split, args.limit, Path(args.dest), image_list=args.image_list,
                                         workers=args.workers, retries=args.retries)
        print(report.summary())
        return 0 if report.ok else 1
    if args.data_cmd == "rate":
        from lpirc import loaders, runinfo, stream
        lst = loaders.read_image_folder(Path(args.folder))
        rec = stream.images_per_second(lst, args.size, train=not args.eval, batch_size=args.batch_size,
                                       limit=args.limit)
        cpu = runinfo.cpu_info()
        print(f"{rec['images_per_s']:.0f} images/s ({'evaluation' if args.eval else 'training'} preprocessing, "
              f"{args.size} px, {rec['timed_images']} images timed after one warm-up batch) on {cpu['model']}, "
              f"{cpu['logical_cpus']} logical CPUs")
        return 0
    if args.data_cmd == "list":
        for name, m in manifest.load_all().items():
            print(f"{name:14s} {m.get('title', '')}")
        return 0
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lpirc", description="Reproduce Hyperconnect's LPIRC 2018 entry.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the pipeline's notebooks with papermill")
    p.add_argument("--profile", default="default")
    p.add_argument("--only", nargs="+", metavar="STEP")
    p.add_argument("--from", dest="start", metavar="STEP")
    p.add_argument("--upstream-of", metavar="STEP", help="only the steps whose results STEP reads, directly or not "
                   "(what a chapter notebook opened by hand needs)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a parameter, e.g. --set distillation.alpha=0.5 (value parsed as YAML)")
    p.add_argument("--force", nargs="*", metavar="STEP", help="rerun these steps (all if none given)")
    p.add_argument("--scheduler", help="where grid tasks run: 'local' (default: one 1-thread worker process per "
                   "core), 'serial' (one worker process), 'dask-local' (a Dask LocalCluster, with its performance "
                   "report) or a Dask address tcp://HOST:8786 (workers share the results folder); default "
                   "$LPIRC_SCHEDULER or local")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("status", help="fresh / stale / missing per step")
    p.add_argument("--profile", default="default")
    p.add_argument("--explain", action="store_true",
                   help="for each package module, which steps import it and which a change makes stale")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("steps", help="list steps and their parameters: type, allowed values, default")
    p.set_defaults(func=_cmd_steps)

    p = sub.add_parser("schema", help="the JSON schema of a profile file (for editors), from the parameter schema")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--write", action="store_true", help="write it to params/profile.schema.json")
    g.add_argument("--check", action="store_true", help="exit 1 if params/profile.schema.json is out of date")
    p.set_defaults(func=_cmd_schema)

    p = sub.add_parser("book", help="build the HTML book from a profile's results")
    p.add_argument("--profile", default="default")
    p.set_defaults(func=_cmd_book)

    p = sub.add_parser("eval", help="top-1/top-5 of a .tflite or .keras classifier on a data folder")
    p.add_argument("model")
    p.add_argument("--data", required=True, help="embedded dataset folder, ILSVRC2012 folder or class folders")
    p.add_argument("--labels", help="ILSVRC2012-format ground truth: 'FILENAME LABEL' per line")
    p.add_argument("--split", default="val", help="split of an embedded dataset folder")
    p.add_argument("--limit", type=int)
    p.add_argument("--skip-corrupt", action="store_true", help="skip undecodable images and count them")
    p.add_argument("--preprocess", default="resize_crop", choices=PREPROCESS,
                   help="image folders: resize_crop (shorter side to S/0.875, centre crop) or inception "
                   "(TF-slim's evaluation: central 87.5%%, bilinear resize; what Google's published accuracies used)")
    p.add_argument("--json", help="also write the result as JSON to this file")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("import-weights", help="a float MobileNet v1 .tflite (e.g. TF-slim's published files) "
                       "as a .keras model of the project's builder")
    p.add_argument("model", help="float MobileNet v1 .tflite")
    p.add_argument("--out", required=True, help="the .keras file to write")
    p.set_defaults(func=_cmd_import_weights)

    p = sub.add_parser("bench", help="single-thread latency of a .tflite (optionally A/B interleaved)")
    p.add_argument("model")
    p.add_argument("--vs", help="a second model, timed interleaved; prints the ratio")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--json")
    p.add_argument("--adb", action="store_true", help="run on an Android phone over adb instead")
    p.add_argument("--serial")
    p.add_argument("--benchmark-binary", help="TFLite benchmark_model binary for the phone")
    p.set_defaults(func=_cmd_bench)

    for name, text in (("per-layer", "per-layer latency of a .tflite (or a pipeline .keras model)"),
                       ("profile", "deprecated alias of per-layer")):
        p = sub.add_parser(name, help=text)
        p.add_argument("model")
        p.add_argument("--runs", type=int, default=50)
        p.add_argument("--no-prefix", action="store_true", help="skip prefix differencing (quadratic cost)")
        p.add_argument("--work-dir", help="where to write the int8 file converted from a .keras model")
        p.add_argument("--json")
        p.set_defaults(func=_cmd_profile)

    p = sub.add_parser("data", help="dataset manifests")
    dsub = p.add_subparsers(dest="data_cmd", required=True)
    v = dsub.add_parser("verify", help="check a local copy against its manifest")
    v.add_argument("name")
    v.add_argument("--path", required=True)
    dsub.add_parser("list", help="list the manifests")
    r = dsub.add_parser("rate", help="images/s of the streaming input pipeline alone (decode + preprocess)")
    r.add_argument("folder", help="class-per-subfolder image folder, e.g. /data/imagenet/train")
    r.add_argument("--size", type=int, default=160)
    r.add_argument("--eval", action="store_true", help="evaluation preprocessing instead of training augmentation")
    r.add_argument("--limit", type=int, default=5000, help="images to read (default 5000)")
    r.add_argument("--batch-size", type=int, default=64)
    f = dsub.add_parser("fetch", help="download an Open Images subset (parallel, resumable, MD5-checked)")
    f.add_argument("name", choices=["open-images"])
    f.add_argument("--split", default="validation")
    f.add_argument("--limit", type=int, required=True)
    f.add_argument("--dest", required=True)
    f.add_argument("--image-list", help="URL or path of the image-list CSV (default: the split's official list)")
    f.add_argument("--workers", type=int, default=8)
    f.add_argument("--retries", type=int, default=3)
    p.set_defaults(func=_cmd_data)
    return parser


def main(argv=None) -> int:
    from lpirc.device import DeviceError
    from lpirc.errors import ModelFileError, WeightsError
    from lpirc.loaders import DataError
    from lpirc.runner.params import ParameterError
    from lpirc.runner.steps import StepFailed

    import signal

    def _terminate(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    # SIGTERM unwinds like Ctrl-C, so a step's staging folder is cleaned and results stay intact.
    signal.signal(signal.SIGTERM, _terminate)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ParameterError, DataError, ModelFileError, DeviceError, WeightsError, FileNotFoundError) as exc:
        print(f"lpirc: error: {exc}", file=sys.stderr)
        return 2
    except StepFailed as exc:
        print(f"lpirc: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lpirc: interrupted; completed steps' results are intact", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
