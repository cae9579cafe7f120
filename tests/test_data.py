import json

import numpy as np
import pytest

from lpirc import data, manifest


def test_same_seed_gives_identical_bytes():
    a, ya = data.generate_split("train", 120, seed=7)
    b, yb = data.generate_split("train", 120, seed=7)
    assert a.tobytes() == b.tobytes() and ya.tobytes() == yb.tobytes()
    c, _ = data.generate_split("train", 120, seed=8)
    assert a.tobytes() != c.tobytes()


def test_split_shapes_dtypes_and_exact_balance():
    x, y = data.generate_split("val", 200, seed=0)
    assert x.shape == (200, 32, 32, 3) and x.dtype == np.uint8
    assert y.dtype == np.int64
    assert np.bincount(y, minlength=10).tolist() == [20] * 10


def test_splits_differ_and_extra_has_out_of_vocabulary():
    train, _ = data.generate_split("train", 100, seed=0)
    hold, _ = data.generate_split("holdout", 100, seed=0)
    assert not np.array_equal(train, hold)
    _, y_extra = data.generate_split("extra", 400, seed=0)
    assert 0.1 < np.mean(y_extra == -1) < 0.3   # style says 20% out of vocabulary


def test_unknown_split_and_negative_size_rejected():
    with pytest.raises(ValueError, match="unknown split"):
        data.generate_split("test", 10, 0)
    with pytest.raises(ValueError, match=">= 0"):
        data.generate_split("train", -1, 0)


def test_generate_dataset_writes_verifiable_files(tmp_path):
    rec = data.generate_dataset(tmp_path, {"train": 30, "val": 20, "holdout": 20, "extra": 10}, seed=1,
                                progress=False)
    assert json.loads((tmp_path / "dataset.json").read_text()) == rec
    x, y = data.load_split(tmp_path, "val")
    assert len(x) == 20 and data.array_digest(x) == rec["splits"]["val"]["x_sha256"]
    report = manifest.verify("embedded", tmp_path)
    assert report.ok, report.summary()
    # corrupt one array: verify names the file
    arr = np.load(tmp_path / "val_x.npy")
    arr[0, 0, 0, 0] ^= 1
    np.save(tmp_path / "val_x.npy", arr)
    report = manifest.verify("embedded", tmp_path)
    assert not report.ok and "val_x.npy" in report.summary()


def test_load_split_missing_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="lpirc run --only data"):
        data.load_split(tmp_path, "train")
