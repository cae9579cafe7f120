import json
import re
import shutil
import textwrap
import typing

import jsonschema
import pytest
import yaml

from lpirc import choices
from lpirc.runner import params as P
from lpirc.paths import project_root
from lpirc.runner import config, schema, steps


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


# --------------------------------------------------------------------------------------------------
# the schema (lpirc.runner.schema): one model per step, nested model specs, errors naming file and key


def project_with_profile(tmp_path, root, text: str, name: str = "typo"):
    """A project folder holding the real notebooks and one profile ``params/<name>.yaml``."""
    (tmp_path / "params").mkdir()
    (tmp_path / "notebooks").symlink_to(root / "notebooks")
    (tmp_path / "params" / f"{name}.yaml").write_text(text)
    return tmp_path


@pytest.mark.parametrize("step", [s.name for s in steps.STEPS])
def test_every_step_has_a_schema_model_matching_its_notebook(root, step):
    """Every step in steps.STEPS (a new step too) has a model whose keys are its notebook's parameters, and
    the notebook's defaults are valid values of it: the schema holds types and ranges, the notebook defaults."""
    assert step in schema.STEP_MODELS, f"add a model for step {step!r} to STEP_MODELS in src/lpirc/runner/schema.py"
    nb = P.notebook_parameters(root / "notebooks" / steps.steps_by_name()[step].notebook)
    model = schema.STEP_MODELS[step]
    assert list(model.model_fields) == list(nb), "same keys, in the notebook's order"
    model.model_validate({k: p.default for k, p in nb.items()})
    assert set(schema.STEP_MODELS) == {s.name for s in steps.STEPS}


def test_committed_json_schema_is_generated(root):
    """params/profile.schema.json is what `lpirc schema --write` makes now, with the notebooks' defaults."""
    committed = (root / config.SCHEMA_FILE).read_text()
    assert committed == config.json_schema_text(root), "regenerate it: lpirc schema --write"
    data = json.loads(committed)
    for step, params in config.step_parameters(root).items():
        props = data["$defs"][schema.STEP_MODELS[step].__name__]["properties"]
        assert {k: props[k]["default"] for k in params} == {k: p.default for k, p in params.items()}


@pytest.mark.parametrize("profile", ["default", "smoke", "full", "imagenet"])
def test_shipped_profiles_name_and_satisfy_the_json_schema(root, profile):
    text = (root / "params" / f"{profile}.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=profile.schema.json\n")
    validator = jsonschema.Draft202012Validator(json.loads((root / config.SCHEMA_FILE).read_text()))
    assert not list(validator.iter_errors(yaml.safe_load(text)))
    typo = yaml.safe_load(text)
    typo.setdefault("baseline", {})["teachers"] = [{"name": "m", "arch": "mobilenet_v1", "width_multipler": 0.5}]
    assert list(validator.iter_errors(typo))


def test_choices_come_from_the_science_package():
    """The schema's choices are the tuples the code acting on them uses (lpirc.choices), not copies."""
    fields = schema.STEP_MODELS
    assert typing.get_args(fields["data"].model_fields["preprocess"].annotation) == choices.PREPROCESS
    assert typing.get_args(fields["data"].model_fields["source"].annotation) == choices.DATA_SOURCES
    assert typing.get_args(fields["distillation"].model_fields["init"].annotation) == choices.INITS
    assert typing.get_args(fields["open_images"].model_fields["init"].annotation) == choices.INITS
    student = fields["baseline"].model_fields["student"].annotation
    teacher = typing.get_args(fields["baseline"].model_fields["teachers"].annotation)[0]
    assert tuple(schema._tags(student)) == choices.TRAINABLE_ARCHS
    assert tuple(schema._tags(schema._unwrap(teacher)[0])) == choices.ARCHS


def test_spec_defaults_are_the_builders(root):
    """A model spec is passed on as written; the defaults `lpirc steps` shows for a missing key are the ones
    the model builder applies (read from the science package's source: importing it would import TensorFlow)."""
    source = "".join(p.read_text() for p in (root / "src" / "lpirc").glob("*.py"))
    for model in (schema.MobileNetSpec, schema.ResNetSpec):
        for key, field in model.model_fields.items():
            if not field.is_required():
                assert f'spec.get("{key}", {json.dumps(field.default)})' in source, (model.__name__, key)


def test_misspelt_nested_key_stops_naming_key_file_and_valid_keys(root, tmp_path):
    """The issue's case: `width_multipler` (one letter off) in a teacher spec used to train width 1.0."""
    project = project_with_profile(tmp_path, root, textwrap.dedent("""\
        baseline:
          teachers:
            - {name: resnet8, arch: resnet, depth: 8, width: 16}
            - {name: mobilenet_0.5, arch: mobilenet_v1, width_multipler: 0.5}
        """))
    with pytest.raises(P.ParameterError) as err:
        config.resolve_parameters(project, "typo")
    assert str(err.value) == ("params/typo.yaml: baseline.teachers[1].width_multipler: unknown key; "
                              "valid keys: name, arch, width_multiplier, weights")
    with pytest.raises(P.ParameterError, match=re.escape(
            "--set: baseline.student.width_multipler: unknown key; valid keys: arch, width_multiplier, weights")):
        config.resolve_parameters(root, "smoke", ["baseline.student={arch: mobilenet_v1, width_multipler: 0.5}"])


def test_bad_values_in_a_file_are_all_reported_with_file_and_path(root, tmp_path):
    project = project_with_profile(tmp_path, root, textwrap.dedent("""\
        global:
          seed: -1
        baseline:
          epochs: 1.5
          student: {arch: frozen, path: x.tflite}
          teachers:
            - {name: r, arch: resnet, depth: 10}
            - {name: f, arch: frozen}
        distillation:
          alphas: [0.5, 2]
          init: warm
        """))
    with pytest.raises(P.ParameterError) as err:
        config.resolve_parameters(project, "typo")
    assert str(err.value).splitlines() == [
        "params/typo.yaml: global.seed = -1: must be >= 0",
        "params/typo.yaml: baseline.student.arch = 'frozen': must be one of mobilenet_v1, resnet "
        "(a student is trained: frozen is for teachers)",
        "params/typo.yaml: baseline.teachers[0].depth = 10: must be 6n + 2 (8, 14, 20, ...): the builder stacks "
        "(depth - 2) / 6 blocks per stage",
        "params/typo.yaml: baseline.teachers[1].path: missing; required keys: name, arch, path",
        "params/typo.yaml: baseline.epochs must be int (default 10), got float 1.5",
        "params/typo.yaml: distillation.alphas[1] = 2: must be in [0, 1]",
        "params/typo.yaml: distillation.init = 'warm': must be one of fresh, trained",
    ]


@pytest.mark.parametrize("text,message", [
    ("baselin:\n  epochs: 1\n", "params/typo.yaml: unknown step 'baselin'; steps: data, baseline"),
    ("baseline:\n  epochz: 1\n", "params/typo.yaml: unknown parameter 'epochz' for step 'baseline'; allowed: "),
    ("global:\n  seeed: 1\n", "params/typo.yaml: unknown parameter 'seeed' (global)"),
    ("baseline: 3\n", "params/typo.yaml: baseline: expected a mapping of parameters"),
    ("budgets_s:\n  baselin: 30\n", "params/typo.yaml: budgets_s.baselin: unknown key; valid keys: data, baseline"),
    ("budgets_s:\n  baseline: -1\n", "params/typo.yaml: budgets_s.baseline = -1: must be > 0"),
    ("scheduler: gpu\n", "params/typo.yaml: scheduler = 'gpu': must be one of serial, local, dask-local"),
    ("factorization:\n  rank_fractions: []\n",
     "params/typo.yaml: factorization.rank_fractions = []: must not be empty"),
    ("baseline:\n  learning_rate: 0\n", "params/typo.yaml: baseline.learning_rate = 0: must be > 0"),
])
def test_profile_mistakes_name_the_file(root, tmp_path, text, message):
    project = project_with_profile(tmp_path, root, text)
    with pytest.raises(P.ParameterError, match=re.escape(message)):
        config.resolve_parameters(project, "typo")


def test_duplicate_teacher_names_refused(root):
    with pytest.raises(P.ParameterError, match="teacher names must be unique and not 'student'.*'a' is not"):
        config.resolve_parameters(root, "smoke",
                                  ["baseline.teachers=[{name: a, arch: resnet}, {name: a, arch: resnet}]"])


def test_notebook_out_of_step_with_the_schema_is_refused(root, tmp_path):
    """A parameter added to a notebook but not to the schema (or the reverse) stops every run, naming both."""
    shutil.copytree(root / "notebooks", tmp_path / "notebooks")
    nb_path = tmp_path / "notebooks" / "01_baseline.ipynb"
    nb = json.loads(nb_path.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    cell["source"] = "".join(cell["source"]).replace("batch_size = 128", "batch_sise = 128")
    nb_path.write_text(json.dumps(nb))
    with pytest.raises(P.ParameterError, match=re.escape(
            "notebooks/01_baseline.ipynb and the schema's Baseline (src/lpirc/runner/schema.py) disagree: "
            "parameters not in the schema: batch_sise (add them with their type and range); "
            "schema keys missing from the parameters cell: batch_size")):
        config.step_parameters(tmp_path)
