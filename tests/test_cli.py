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
