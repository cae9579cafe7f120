import os
import subprocess
import sys
import time


def lpirc(*args, cwd=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "lpirc", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def test_unknown_parameter_fails_at_once(root, tmp_path, monkeypatch):
    t0 = time.perf_counter()
    r = lpirc("run", "--profile", "smoke", "--set", "nonsense=1", cwd=root)
    assert r.returncode == 2
    assert "unknown parameter 'nonsense'" in r.stderr and "Known parameters" in r.stderr
    assert time.perf_counter() - t0 < 60


def test_wrong_type_fails_at_once(root):
    r = lpirc("run", "--profile", "smoke", "--set", "baseline.epochs=abc", cwd=root)
    assert r.returncode == 2
    assert "baseline.epochs must be int" in r.stderr and "'abc'" in r.stderr


def test_unknown_step_and_profile(root):
    r = lpirc("run", "--only", "quantisation", cwd=root)
    assert r.returncode == 2 and "unknown step 'quantisation'" in r.stderr
    r = lpirc("run", "--profile", "nope", cwd=root)
    assert r.returncode == 2 and "profile 'nope' not found" in r.stderr


def test_steps_lists_parameters(root):
    r = lpirc("steps", cwd=root)
    assert r.returncode == 0 and "baseline" in r.stdout and "epochs" in r.stdout


def test_not_a_tflite_file(tmp_path, root):
    bogus = tmp_path / "model.tflite"
    bogus.write_bytes(b"\x00" * 64)
    r = lpirc("bench", str(bogus), cwd=root)
    assert r.returncode == 2 and "not a TFLite flatbuffer" in r.stderr


def test_data_verify_missing_folder(tmp_path, root):
    r = lpirc("data", "verify", "ilsvrc2012_val", "--path", str(tmp_path / "none"), cwd=root)
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_steps_prints_the_schema(root):
    """`lpirc steps`: each parameter's type, allowed values (lpirc.runner.schema) and default (the notebook's)."""
    r = lpirc("steps", cwd=root)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    rank = next(line for line in lines if line.split()[:1] == ["rank_fractions"])
    assert "list[float]" in rank and "each in (0, 1]" in rank and "default [0.5, 0.25]" in rank
    assert any("preprocess" in line and "one of inception, resize_crop" in line for line in lines)
    assert "model specs" in r.stdout and "width_multiplier" in r.stdout and "arch: frozen" in r.stdout


def test_schema_file_is_current(root):
    r = lpirc("schema", "--check", cwd=root)
    assert r.returncode == 0, r.stderr


def test_misspelt_nested_key_in_a_profile_stops_at_once(root, tmp_path):
    """The issue's done-when: a profile with a misspelt nested key stops in under a minute, naming the key
    and the file (it used to train width 1.0 without a word)."""
    (tmp_path / "params").mkdir()
    (tmp_path / "notebooks").symlink_to(root / "notebooks")
    (tmp_path / "params" / "typo.yaml").write_text(
        "baseline:\n  teachers:\n    - {name: resnet8, arch: resnet, depth: 8, width: 16}\n"
        "    - {name: mobilenet_0.5, arch: mobilenet_v1, width_multipler: 0.5}\n")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "lpirc", "run", "--profile", "typo"], capture_output=True, text=True,
                       cwd=root, timeout=120, env={**os.environ, "LPIRC_ROOT": str(tmp_path)})
    assert r.returncode == 2, r.stderr
    assert ("params/typo.yaml: baseline.teachers[1].width_multipler: unknown key; valid keys: name, arch, "
            "width_multiplier, weights") in r.stderr
    assert time.perf_counter() - t0 < 60
    assert not (tmp_path / "results").exists()
