import pytest

from lpirc.runner import params as P
from lpirc.paths import project_root
from lpirc.runner import config, steps


@pytest.fixture(scope="module")
def step_params(root):
    return config.step_parameters(root)


def test_defaults_merge_profile_and_set(step_params):
    merged = P.merge(step_params, {"global": {"seed": 3}, "baseline": {"epochs": 2}},
                     P.parse_set(["baseline.learning_rate=0.5", "quantization.qat_epochs=0"]))
    assert all(v["seed"] == 3 for v in merged.values())
    assert merged["baseline"]["epochs"] == 2 and merged["baseline"]["learning_rate"] == 0.5
    assert merged["quantization"]["qat_epochs"] == 0


def test_int_given_for_float_is_accepted_as_float(step_params):
    merged = P.merge(step_params, {}, P.parse_set(["baseline.learning_rate=1"]))
    assert merged["baseline"]["learning_rate"] == 1.0 and isinstance(merged["baseline"]["learning_rate"], float)


def test_unknown_key_names_step_and_allowed_keys(step_params):
    with pytest.raises(P.ParameterError, match="unknown parameter 'epochz' for step 'baseline'; allowed: .*epochs"):
        P.merge(step_params, {"baseline": {"epochz": 1}}, {})
    with pytest.raises(P.ParameterError, match="unknown parameter 'nonsense' \\(global\\)"):
        P.merge(step_params, {}, P.parse_set(["nonsense=1"]))
    with pytest.raises(P.ParameterError, match="unknown step 'baselin'"):
        P.merge(step_params, {"baselin": {"epochs": 1}}, {})


def test_wrong_type_names_expected_type(step_params):
    with pytest.raises(P.ParameterError, match="baseline.epochs must be int .*got str 'abc'"):
        P.merge(step_params, {}, P.parse_set(["baseline.epochs=abc"]))
    with pytest.raises(P.ParameterError, match="must be int"):
        P.merge(step_params, {}, P.parse_set(["baseline.epochs=true"]))


def test_ranges(step_params):
    with pytest.raises(P.ParameterError, match="must be >= 0"):
        P.merge(step_params, {}, P.parse_set(["baseline.epochs=-1"]))
    with pytest.raises(P.ParameterError, match="rank fractions must be in"):
        P.merge(step_params, {}, P.parse_set(["factorization.challenge_rank_fractions=[0.5, 1.2]"]))


def test_stacked_source_checked_before_running(root):
    with pytest.raises(P.ParameterError, match="stacked.source = 'teacher': must be one of"):
        config.resolve_parameters(root, "smoke", ["stacked.source=teacher"])


def test_set_syntax():
    with pytest.raises(P.ParameterError, match="expected KEY=VALUE"):
        P.parse_set(["baseline.epochs"])
    assert P.parse_set(["a.b=[1, 2]", "x=y"]) == {"a": {"b": [1, 2]}, "global": {"x": "y"}}


def test_yaml_syntax_error_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("global:\n  seed: 0\nbaseline:\n  epochs: [1, 2\n")
    with pytest.raises(P.ParameterError, match="not valid YAML at line"):
        P.load_profile(bad)
    with pytest.raises(P.ParameterError, match="profile 'nope' not found"):
        P.load_profile(tmp_path / "nope.yaml")


def test_imagenet_profile_needs_its_folders(root, tmp_path, monkeypatch):
    """The real-data template names folders and weight files that do not exist here: refused before any
    work; with them present (made here, empty), the profile validates."""
    with pytest.raises(P.ParameterError, match="data.train_dir = '/data/imagenet/train' does not exist"):
        config.resolve_parameters(root, "imagenet")
    overrides = []
    for key in ("train_dir", "val_dir", "holdout_dir", "extra_dir"):
        (tmp_path / key).mkdir()
        overrides.append(f"data.{key}={tmp_path / key}")
    (tmp_path / "val.txt").write_text("")
    overrides.append(f"data.val_labels_file={tmp_path / 'val.txt'}")
    with pytest.raises(P.ParameterError, match="baseline.student.weights = '/data/weights/.*' does not exist"):
        config.resolve_parameters(root, "imagenet", overrides)
    for name in ("student.tflite", "teacher.tflite"):
        (tmp_path / name).write_bytes(b"")
    overrides.append(f"baseline.student={{arch: mobilenet_v1, weights: {tmp_path / 'student.tflite'}}}")
    with pytest.raises(P.ParameterError, match=r"teachers\[inception_v3\]: a frozen teacher needs the path"):
        config.resolve_parameters(root, "imagenet", overrides)
    overrides.append(f"baseline.teachers=[{{name: inception_v3, arch: frozen, path: {tmp_path / 'teacher.tflite'}}}, "
                     "{name: mobilenet_1.0_imagenet, arch: mobilenet_v1, weights: imagenet}]")
    merged, _ = config.resolve_parameters(root, "imagenet", overrides)
    assert merged["data"]["source"] == "folders" and merged["data"]["resolution"] == 160


@pytest.mark.parametrize("profile", ["default", "smoke", "full"])
def test_shipped_profiles_validate(root, profile):
    merged, budgets = config.resolve_parameters(root, profile)
    assert set(merged) == {s.name for s in steps.STEPS}
    assert all(v["profile"] == profile for v in merged.values())


def test_unknown_teacher_rejected(root):
    with pytest.raises(P.ParameterError, match="unknown teacher 'gpt'"):
        config.resolve_parameters(root, "smoke", ["distillation.teachers=[gpt]"])
