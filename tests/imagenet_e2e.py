"""The imagenet profile's end-to-end run, as a script (``python tests/imagenet_e2e.py OUT``).

It takes minutes and keeps one core busy, so the test session starts this script in the background as
soon as it has collected the end-to-end test (``conftest.py``), and that test waits for it; meanwhile
the other tests use the other core. It writes, under OUT:

- ``weights/``: float .tflite files shaped like TF-slim's published MobileNet v1 (1001 classes, 160 px,
  BatchNorm statistics randomized so folding them is really exercised): a 0.25 student, 0.5 and 0.75
  teachers;
- ``N/``: an ILSVRC-format tree (``imagenet/``) and a project copy (``project/``) that ran every step of
  the profile on it;
- ``done.json``: the run's return code and the tail of its output.

That memory does not grow with the number of images is tested on the streaming functions the growing
steps run, on N and 10 N images (tests/test_imagenet_profile.py), not by a second whole run.
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
    log = open(out / "run.log", "w")
    return subprocess.Popen([sys.executable, "-m", "lpirc", "run", "--profile", "imagenet_tiny"], cwd=project,
                            env=env, stdout=log, stderr=subprocess.STDOUT, text=True)


def main(out: Path) -> int:
    import conftest  # noqa: F401  (the tests' environment: legacy Keras, quiet TensorFlow, the fake CPU name)

    root = Path(__file__).resolve().parents[1]
    weights = make_weights(out / "weights")
    proc = start(out / "N", root, weights, N_PER_CLASS)
    rc = proc.wait(timeout=3000)
    done = {"N": {"returncode": rc, "output_tail": (out / "N" / "run.log").read_text()[-4000:]}}
    (out / "done.json").write_text(json.dumps(done, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
