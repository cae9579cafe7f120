"""The imagenet profile's two end-to-end runs, as a script (``python tests/imagenet_e2e.py OUT``).

They take about ten minutes and keep one core busy, so the test session starts this script in the
background as soon as it has collected ``test_imagenet_profile.py`` (``conftest.py``) and those tests
wait for it; meanwhile the other tests use the other core. It writes, under OUT:

- ``weights/``: float .tflite files shaped like TF-slim's published MobileNet v1 (1001 classes, 160 px,
  BatchNorm statistics randomized so folding them is really exercised): a 0.25 student, 0.5 and 0.75
  teachers;
- ``N/`` and ``10N/``: an ILSVRC-format tree (``imagenet/``) and a project copy (``project/``) that ran
  the profile: all steps on N images, and the steps whose inputs grow with the images on 10 N;
- ``done.json``: each run's return code and the tail of its output.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

RESOLUTION = 160
SIZES = ((120, 160), (200, 150), (180, 180))
N_PER_CLASS = 40
# The steps whose inputs grow with the images: the data step lists and checks them; baseline trains on
# them; distillation labels all of them with the teacher and trains on them. (The other steps train on
# the same streamed splits through the same code; running them again would double the test's time.)
GROWING = ["data", "baseline", "distillation"]


def tiny_imagenet_profile(root: Path, tree: Path, weights: dict, holdout: int) -> dict:
    """params/imagenet.yaml with the test's folders and weights, and smoke-sized budgets for every step."""
    profile = yaml.safe_load((root / "params" / "imagenet.yaml").read_text())
    smoke = yaml.safe_load((root / "params" / "smoke.yaml").read_text())
    for step in ("quantization", "factorization", "benchmark", "stacked"):
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
    profile["distillation"].update(teachers=[frozen["name"]], seeds=[0, 1], representative_size=16)
    profile["open_images"].update(teacher=tuned["name"], pool_multipliers=[0.25], representative_size=16)
    profile["factorization"].update(finetune_size=32)
    profile["stacked"].update(finetune_size=32)
    profile["scheduler"] = "serial"
    profile.pop("budgets_s", None)
    return profile


def make_weights(out: Path) -> dict:
    from test_real_data import float_tflite, randomize_batchnorm

    from lpirc import models

    out.mkdir(parents=True, exist_ok=True)
    return {w: float_tflite(randomize_batchnorm(models.mobilenet_v1(w, RESOLUTION, 1001), seed=int(w * 8)),
                            out / f"mobilenet_v1_{w}_{RESOLUTION}.tflite") for w in (0.25, 0.5, 0.75)}


def start(out: Path, root: Path, weights: dict, n_per_class: int, only: list[str] | None):
    from conftest import copy_project
    from test_real_data import jpeg_tree

    tree = jpeg_tree(out / "imagenet", n_per_class, sizes=SIZES)
    project = copy_project(out / "project")
    profile = tiny_imagenet_profile(root, tree, weights, holdout=n_per_class // 4 * 3)
    (project / "params" / "imagenet_tiny.yaml").write_text(yaml.safe_dump(profile))
    # glibc raises its mmap threshold each time a large block is freed, so freed batches stay in the heap
    # and RSS climbs to a plateau over the first few hundred images (predicting 36 / 360 / 1,080 streamed
    # images peaked at 693 / 854 / 877 MB). Holding the threshold at glibc's starting value (128 KiB)
    # keeps that warm-up out of the comparison (663 / 708 / 718 MB): the test measures the program.
    env = {**os.environ, "LPIRC_ROOT": str(project), "MALLOC_MMAP_THRESHOLD_": "131072"}
    env.pop("LPIRC_RESULTS_DIR", None)
    log = open(out / "run.log", "w")
    return subprocess.Popen([sys.executable, "-m", "lpirc", "run", "--profile", "imagenet_tiny",
                             *(["--only", *only] if only else [])], cwd=project, env=env, stdout=log,
                            stderr=subprocess.STDOUT, text=True)


def main(out: Path) -> int:
    import conftest  # noqa: F401  (the tests' environment: legacy Keras, quiet TensorFlow, the fake CPU name)

    root = Path(__file__).resolve().parents[1]
    weights = make_weights(out / "weights")
    procs = {"N": start(out / "N", root, weights, N_PER_CLASS, None),
             "10N": start(out / "10N", root, weights, 10 * N_PER_CLASS, GROWING)}
    done = {}
    for name, proc in procs.items():
        rc = proc.wait(timeout=3000)
        done[name] = {"returncode": rc, "output_tail": (out / name / "run.log").read_text()[-4000:]}
    (out / "done.json").write_text(json.dumps(done, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
