"""Profiler, projection, score and phone-output parsing."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lpirc import conversion, device, flatbuffer, models, profiler, projection, reference

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def tiny_mobilenet(tmp_path_factory):
    m = models.mobilenet_v1(0.25, 64, 11)
    path = tmp_path_factory.mktemp("prof") / "mnv1.tflite"
    conversion.convert(m, "int8", path, conversion.random_representative((64, 64, 3), 4))
    return m, path


def test_profiler_units_and_macs_match_keras(tiny_mobilenet):
    m, path = tiny_mobilenet
    ops = flatbuffer.operators(path)
    units = profiler.keras_units(ops)
    assert units[:3] == ["conv1", "conv_dw_1", "conv_pw_1"] and "conv_pw_13" in units
    keras_macs = {layer.name: models.layer_macs(layer) for layer in m.layers if models.layer_macs(layer)}
    for op, unit in zip(ops, units):
        if unit in keras_macs:
            assert op["macs"] == keras_macs[unit], unit
    assert sum(op["macs"] for op in ops) == models.count_macs(m)


def test_profile_parts_add_up(tiny_mobilenet, tmp_path):
    """The parts are timings: recorded, never bounded here, since a noisy machine decides nothing (two timing
    sessions of the same file differed by 2x on a shared 2-core host). What holds on any machine: every
    operator has a part, and the prefix differences telescope to the timing of the last prefix, which is
    the whole model (it computes the whole model's output), so their sum is a timing of the whole model."""
    from ai_edge_litert.interpreter import Interpreter

    _, path = tiny_mobilenet
    prof = profiler.profile(path, runs=15, warmup=2, work_dir=tmp_path)
    n = len(flatbuffer.operators(path))
    assert len(prof["ops"]) == n
    assert all(op["single_ms"] >= 0 for op in prof["ops"])
    assert 0 < prof["overhead_ms"] < prof["whole_ms"]
    assert prof["sum_single_ms"] == pytest.approx(sum(op["single_ms"] for op in prof["ops"]) + prof["overhead_ms"])
    assert prof["sum_prefix_ms"] == pytest.approx(sum(op["prefix_ms"] for op in prof["ops"]) + prof["overhead_ms"])
    outputs = []
    for model in (path, tmp_path / f"prefix{n - 1:03d}.tflite"):
        it = Interpreter(model_path=str(model))
        it.allocate_tensors()
        inp = it.get_input_details()[0]
        it.set_tensor(inp["index"], np.random.default_rng(0).integers(-128, 128, size=inp["shape"]).astype(np.int8))
        it.invoke()
        outputs.append(it.get_tensor(it.get_output_details()[0]["index"]))
    np.testing.assert_array_equal(*outputs)


def test_single_op_submodel_reproduces_the_op(tiny_mobilenet):
    """A sliced operator computes what it computed inside the full model."""
    from ai_edge_litert.interpreter import Interpreter

    _, path = tiny_mobilenet
    model = flatbuffer.read(path)
    full = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
    full.allocate_tensors()
    inp = full.get_input_details()[0]
    x = np.random.default_rng(0).integers(-128, 128, size=inp["shape"]).astype(np.int8)
    full.set_tensor(inp["index"], x)
    full.invoke()
    g = model.subgraphs[0]
    k = 4
    op = g.operators[k]
    sub = Interpreter(model_content=flatbuffer.to_bytes(flatbuffer.submodel(model, [k])))
    sub.allocate_tensors()
    act_inputs = [t for t in op.inputs if t >= 0 and not flatbuffer._is_constant(model, g.tensors[t])]
    for detail, t in zip(sub.get_input_details(), act_inputs):
        sub.set_tensor(detail["index"], full.get_tensor(t))
    sub.invoke()
    np.testing.assert_array_equal(sub.get_tensor(sub.get_output_details()[0]["index"]), full.get_tensor(op.outputs[0]))


def test_projection_recovers_a_known_law():
    rng = np.random.default_rng(0)
    host = rng.uniform(1, 50, 16)
    macs = rng.uniform(1e7, 6e8, 16)
    target = np.exp(0.7) * host ** 0.9 * (macs / 1e8) ** 0.1
    coef = projection.fit_loglinear(host, macs, target)
    np.testing.assert_allclose(projection.predict(coef, host, macs), target, rtol=1e-8)
    assert np.max(np.abs(projection.leave_one_out(host, macs, target))) < 1e-8
    noisy = target * rng.uniform(0.9, 1.1, 16)
    assert np.median(np.abs(projection.leave_one_out(host, macs, noisy))) < 0.15


def test_macs_per_cycle():
    assert projection.macs_per_cycle(["avx2", "avx512f", "avx512_vnni"], "int8") == 64
    assert projection.macs_per_cycle(["avx2", "avx512f", "avx512_vnni", "amx_int8"], "int8") == 1024
    assert projection.macs_per_cycle(["avx2"], "float32") == 16
    with pytest.raises(ValueError):
        projection.macs_per_cycle([], "int4")


def test_challenge_score_matches_the_seed():
    assert reference.challenge_score(67.3, 43) == pytest.approx(47.0, abs=0.05)
    assert reference.challenge_score(63.59, 36) == pytest.approx(53.0, abs=0.05)
    assert reference.challenge_score(70.0, 12) == 70.0          # faster than 30 ms gains nothing


def test_parse_recorded_benchmark_model_output():
    text = (FIXTURES / "benchmark_model_android.txt").read_text()
    s = device.parse_summary(text)
    assert s["avg_us"] == 41804.2 and s["avg_ms"] == pytest.approx(41.8042) and s["runs"] == 50
    assert s["init_us"] == 21470 and s["std_us"] == 366
    ops = device.parse_op_profile(text)
    assert [o["op"] for o in ops][:3] == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D"]
    assert len(ops) == 6 and ops[3]["avg_ms"] == 3.011 and "conv_pw_13" in ops[3]["name"]
    assert ops[-1]["percent"] == pytest.approx(1.192)


def test_parse_old_format_with_start_column():
    text = """Average inference timings in us: Warmup: 1, Init: 2
Inference timings in us: Init: 100, First inference: 900, Warmup (avg): 850, Inference (avg): 800
============================== Run Order ==============================
\t             [node type]\t  [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]
\t                 CONV_2D\t    0.000\t    4.269\t    4.269\t  0.107%\t  0.107%\t     0.000\t        0\t[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]
"""
    ops = device.parse_op_profile(text)
    assert ops == [{"op": "CONV_2D", "avg_ms": 4.269, "percent": 0.107, "name": "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]"}]
    assert device.parse_summary(text)["avg_us"] == 800


def test_adb_missing_says_so(tmp_path, root, monkeypatch):
    env = {"PATH": "/nonexistent", "HOME": str(tmp_path)}
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\x00" * 4 + b"TFL3" + b"\x00" * 8)
    r = subprocess.run([sys.executable, "-m", "lpirc", "bench", "--adb", str(model), "--benchmark-binary", "x"],
                       capture_output=True, text=True, cwd=root, env=env, timeout=120)
    assert r.returncode == 2 and "adb not found" in r.stderr


def test_cli_bench_and_profile_on_a_foreign_file(tmp_path, root):
    """A .tflite the project did not write: built directly with tf.lite from a tf.function."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 24, 24, 3], tf.float32)])
    def net(x):
        w = tf.constant(np.random.default_rng(0).normal(size=(3, 3, 3, 8)).astype(np.float32))
        y = tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME"))
        return tf.reduce_mean(y, axis=[1, 2])

    conv = tf.lite.TFLiteConverter.from_concrete_functions([net.get_concrete_function()], net)
    path = tmp_path / "foreign.tflite"
    path.write_bytes(conv.convert())
    r = subprocess.run([sys.executable, "-m", "lpirc", "bench", str(path), "--vs", str(path), "--runs", "10"],
                       capture_output=True, text=True, cwd=root, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "median" in r.stdout and "ratio" in r.stdout
    out = tmp_path / "prof.json"
    r = subprocess.run([sys.executable, "-m", "lpirc", "per-layer", str(path), "--runs", "10", "--json", str(out)],
                       capture_output=True, text=True, cwd=root, timeout=120)
    assert r.returncode == 0, r.stderr
    prof = json.loads(out.read_text())
    assert prof["ops"][0]["op"] == "CONV_2D" and prof["ops"][0]["macs"] == 24 * 24 * 8 * 27
