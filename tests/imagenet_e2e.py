"""The imagenet profile's end-to-end run, as a script (``python tests/imagenet_e2e.py OUT``).

It takes minutes, in three processes (the run, and the memory measurements on two sizes), so the test
session starts this script in the background, at a lower priority, as soon as it has collected a test
that reads it (``conftest.py``), and those tests wait for it; meanwhile the other tests run. It writes,
under OUT:

- ``weights/``: float .tflite files shaped like TF-slim's published MobileNet v1 (1001 classes, 160 px,
  BatchNorm statistics randomized so folding them is really exercised): a 0.25 student, 0.5 and 0.75
  teachers;
- ``N/``: an ILSVRC-format tree (``imagenet/``) and a project copy (``project/``) that ran every step of
  the profile on it;
- ``memory/``: the streaming functions of the steps whose inputs grow (:data:`STREAMING_STEPS`) run on
  N and on 10 N images (a tree each), one process per size, beside the end-to-end run: whether memory
  grows with the number of images is tested on them (tests/test_imagenet_profile.py), not by a second
  whole run;
- ``done.json``: the run's return code and the tail of its output ("N"), and each size's images and
  peak memory per step ("memory").
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

RESOLUTION = 160
SIZES = ((120, 160), (200, 150), (180, 180))
N_PER_CLASS = 40

GROWING = ["data", "baseline", "distillation"]

# What the three steps do with the images, as the imagenet profile runs them (the same functions and
# settings, in one process; grid tasks called directly): the data step lists the folders and decodes every
# image once; the baseline trains the student on the streamed train split (64 images an epoch) and scores
# it on val and holdout, and scores a frozen .tflite teacher on them; distillation has that teacher label
# every train image and trains a student on its logits. Each step's peak resident memory: the process's
# high-water mark, reset before the step (/proc/self/clear_refs), read after it (VmHWM), as the runner
# records each step's peak.
STREAMING_STEPS = textwrap.dedent("""
    import json, re, sys
    from pathlib import Path
    from lpirc import baseline, data, distill

    tree, out, teacher = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    holdout, resolution = int(sys.argv[4]), int(sys.argv[5])
    peak = {}
    def reset():                                   # the high-water mark back to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
    def mark(step):                                # VmHWM in kB
        peak[step] = int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024
        reset()

    reset()
    folders = {"train": str(tree / "train"), "val": str(tree / "val"), "holdout": "", "extra": str(tree / "pool")}
    record = data.make_dataset(out / "data", "folders", {"train": 0, "val": 0, "holdout": holdout, "extra": 0}, 0,
                               folders, resolution, {"val": str(tree / "val" / "val.txt")}, False, "inception", 64)
    mark("data")
    student = {"arch": "mobilenet_v1", "width_multiplier": 0.25}
    common = dict(data_dir=str(out / "data"), batch_size=16, learning_rate=1e-4, seed=0)
    baseline.train_point(out_path=str(out / "student.keras"), name="student", role="student", spec=student,
                         epochs=1, **common)
    baseline.train_point(out_path=str(out / "teacher.tflite"), name="teacher", role="teacher",
                         spec={"arch": "frozen", "path": teacher}, epochs=0, **common)
    mark("baseline")
    x_train, _ = data.load_split(out / "data", "train")
    logits, _ = distill.teacher_logits_file(Path(teacher), x_train, out / "cache")
    distill.train_point(out_dir=str(out / "distilled"), student_path=str(out / "student.keras"),
                        logits_path=str(logits), alpha=0.5, teacher="teacher", temperature=4.0, epochs=1,
                        representative_size=16, init="trained", **common)
    mark("distillation")
    print(json.dumps({"images": {s: v["n"] for s, v in record["splits"].items()}, "peak_mb": peak}))
""")


def tiny_imagenet_profile(root: Path, tree: Path, weights: dict, holdout: int) -> dict:
    """params/imagenet.yaml with the test's folders and weights, and smoke-sized budgets for every step."""
    profile = yaml.safe_load((root / "params" / "imagenet.yaml").read_text())
    smoke = yaml.safe_load((root / "params" / "smoke.yaml").read_text())
    for step in ("quantization", "factorization", "benchmark", "stacked", "rule"):
        profile[step] = {**profile.get(step, {}), **smoke[step]}
    for step in ("quantization", "factorization"):
        profile[step].update(challenge_width=0.25, challenge_resolution=128)
    profile["global"]["batch_size"] = 16
    profile["data"].update(train_dir=str(tree / "train"), val_dir=str(tree / "val"),
                           val_labels_file=str(tree / "val" / "val.txt"), holdout_dir="", holdout_size=holdout,
                           extra_dir=str(tree / "pool"), extra_size=0, epoch_size=64)
    # Two kinds of teacher: one fine-tuned from imported weights (open_images uses it), and a larger one
    # used as the file it is, never trained (distillation uses it), as TF-slim's Inception would be.
    tuned = {"name": "mobilenet_0.5_pretrained", "arch": "mobilenet_v1", "width_multiplier": 0.5,
             "weights": str(weights[0.5])}
    frozen = {"name": "mobilenet_0.75_frozen", "arch": "frozen", "path": str(weights[0.75])}
    profile["baseline"].update(student={"arch": "mobilenet_v1", "width_multiplier": 0.25, "weights": str(weights[0.25])},
                               teachers=[tuned, frozen])
    profile["distillation"].update(teachers=[frozen["name"]], seeds=[0, 1], representative_size=16, cost_images=64,
                                   time_split=False)
    profile["open_images"].update(teacher=tuned["name"], pool_multipliers=[0.25], representative_size=16)
    profile["factorization"].update(finetune_size=32)
    # a rank the factorization chapter did not time, so the stacked chapter times its architecture itself
    # (the smoke run reuses the factorization chapter's timing)
    profile["stacked"].update(finetune_size=32, rank_fraction=0.25)
    profile["scheduler"] = "serial"
    profile.pop("budgets_s", None)
    return profile


def make_weights(out: Path) -> dict:
    from test_real_data import float_tflite, randomize_batchnorm

    from lpirc import models

    out.mkdir(parents=True, exist_ok=True)
    return {w: float_tflite(randomize_batchnorm(models.mobilenet_v1(w, RESOLUTION, 1001), seed=int(w * 8)),
                            out / f"mobilenet_v1_{w}_{RESOLUTION}.tflite") for w in (0.25, 0.5, 0.75)}


def start(out: Path, root: Path, weights: dict, n_per_class: int):
    from conftest import copy_project
    from test_real_data import jpeg_tree

    tree = jpeg_tree(out / "imagenet", n_per_class, sizes=SIZES)
    project = copy_project(out / "project")
    profile = tiny_imagenet_profile(root, tree, weights, holdout=n_per_class // 4 * 3)
    (project / "params" / "imagenet_tiny.yaml").write_text(yaml.safe_dump(profile))
    env = {**os.environ, "LPIRC_ROOT": str(project)}
    env.pop("LPIRC_RESULTS_DIR", None)
    with open(out / "run.log", "w") as log:
        return subprocess.Popen([sys.executable, "-m", "lpirc", "run", "--profile", "imagenet_tiny"], cwd=project,
                                env=env, stdout=log, stderr=subprocess.STDOUT, text=True)


def start_memory(out: Path, root: Path, teacher: Path) -> dict:
    """:data:`STREAMING_STEPS` on N and on 10 N images per class, a process each (started, not waited for).
    glibc raises its mmap threshold each time a large block is freed, so freed batches stay in the heap
    and RSS climbs to a plateau over the first few hundred images (predicting 36 / 360 / 1,080 streamed
    images peaked at 693 / 854 / 877 MB). Holding the threshold at glibc's starting value (128 KiB)
    keeps that warm-up out of the comparison (663 / 708 / 718 MB): the test measures the program."""
    from test_real_data import jpeg_tree

    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    procs = {}
    for name, n in (("N", N_PER_CLASS), ("10N", 10 * N_PER_CLASS)):
        tree = jpeg_tree(out / name / "imagenet", n, sizes=SIZES)
        with open(out / f"{name}.log", "w") as log:
            procs[name] = subprocess.Popen(
                [sys.executable, "-c", STREAMING_STEPS, str(tree), str(out / name / "out"), str(teacher),
                 str(n // 4 * 3), str(RESOLUTION)], cwd=root, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    return procs


def main(out: Path) -> int:
    import conftest  # noqa: F401  (the tests' environment: legacy Keras, quiet TensorFlow, the fake CPU name)

    root = Path(__file__).resolve().parents[1]
    weights = make_weights(out / "weights")
    proc = start(out / "N", root, weights, N_PER_CLASS)
    memory = start_memory(out / "memory", root, weights[0.25])      # the 0.25 file as the frozen teacher
    done = {"memory": {}}
    for name, mem in memory.items():
        stdout, _ = mem.communicate(timeout=3000)
        if mem.returncode != 0:
            done["memory"][name] = {"returncode": mem.returncode,
                                    "output_tail": (out / "memory" / f"{name}.log").read_text()[-4000:]}
        else:
            done["memory"][name] = {"returncode": 0, **json.loads(stdout.strip().splitlines()[-1])}
    rc = proc.wait(timeout=3000)
    done["N"] = {"returncode": rc, "output_tail": (out / "N" / "run.log").read_text()[-4000:]}
    (out / "done.json").write_text(json.dumps(done, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
