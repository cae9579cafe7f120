"""The parameter schema: every step's parameters, and the model specs nested in them, typed and
range-checked in one place.

One pydantic model per step (``STEP_MODELS``, keyed by step name) says each parameter's type, its
range or its choices; unknown keys are refused at any depth (``extra="forbid"``), so a misspelt key in
a teacher spec stops the run instead of training with a default. The choices themselves come from
the modules that act on them (``lpirc.choices``, ``lpirc.grid``, ``lpirc.runner.context``).

Defaults are not repeated here: a step's defaults are its notebook's ``parameters`` cell, which a
notebook opened by hand runs with. The fields therefore have none; the runner validates the merged
values (notebook defaults <- profile <- ``--set``, all keys present), and the notebook's keys must be
exactly the model's fields (``lpirc.runner.config.step_parameters`` refuses a notebook that drifts).
``lpirc steps`` and the editors' JSON schema (``params/profile.schema.json``, ``lpirc schema``) show
both: the type and range from here, the default from the notebook.

Model specs (``baseline.student``, ``baseline.teachers[]``) are checked by architecture: each arch
takes its own keys. Their defaults are the ones ``lpirc.weights.build`` applies to a missing key; the
spec is passed on as written (nothing is filled in), so the stamps of existing results do not change.
"""
from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.fields import FieldInfo
from pydantic.json_schema import models_json_schema
from pydantic_core import PydanticCustomError

from lpirc.choices import DATA_SOURCES, INITS, PREPROCESS, SCHEDULERS, STACKED_SOURCES, check_scheduler


class Say(str):
    """What to call a constrained value in messages and in ``lpirc steps`` (pydantic ignores it)."""


# --------------------------------------------------------------------------------------------------
# value types: the ranges, named once
Seed = Annotated[int, Field(ge=0)]
Count = Annotated[int, Field(ge=0)]                  # epochs, sizes (0 = none, or all where the notebook says)
Positive = Annotated[int, Field(ge=1)]               # batch sizes, timed runs, resolutions, classes
Rate = Annotated[float, Field(gt=0)]                 # learning rates, temperatures
Width = Annotated[float, Field(gt=0)]                # MobileNet width multipliers, pool multipliers
Fraction = Annotated[float, Field(ge=0, le=1)]       # distillation mixing ratios
RankFraction = Annotated[float, Field(gt=0, le=1), Say("rank fractions")]


def _nonempty(item):
    return Annotated[list[item], Field(min_length=1)]


# --------------------------------------------------------------------------------------------------
# model specs: {arch: ..., <that arch's keys>}, teachers with a name
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _resnet_depth(depth: int) -> int:
    if (depth - 2) % 6:
        raise PydanticCustomError("resnet_depth", "must be 6n + 2 (8, 14, 20, ...): the builder stacks "
                                  "(depth - 2) / 6 blocks per stage")
    return depth


Weights = Annotated[str, Field(description="the start: none, imagenet (Keras applications, mobilenet_v1 only) "
                                           "or the path of a .keras, .h5 or float MobileNet v1 .tflite file")]


class MobileNetSpec(_Strict):
    """MobileNet v1 (lpirc.models.mobilenet_v1)."""
    arch: Literal["mobilenet_v1"]
    width_multiplier: Width = 1.0
    weights: Weights = "none"


def _no_imagenet(weights: str) -> str:
    if weights == "imagenet":
        raise PydanticCustomError("weights", "imagenet weights exist for mobilenet_v1 only; give none or a file")
    return weights


class ResNetSpec(_Strict):
    """ResNet for 32 px inputs (lpirc.models.resnet): 3 stages of (depth - 2) / 6 blocks."""
    arch: Literal["resnet"]
    depth: Annotated[int, Field(ge=8, description="6n + 2: 8, 14, 20, ..."), AfterValidator(_resnet_depth)] = 8
    width: Positive = 32
    weights: Annotated[Weights, AfterValidator(_no_imagenet)] = "none"


class _Named(_Strict):
    name: Annotated[str, Field(min_length=1, description="the teacher's name: its file, and what "
                                                          "distillation.teachers and open_images.teacher name")]


class MobileNetTeacher(MobileNetSpec, _Named):
    """A MobileNet v1 teacher, trained on labels like the student."""


class ResNetTeacher(ResNetSpec, _Named):
    """A ResNet teacher, trained on labels like the student."""


class FrozenTeacher(_Named):
    """A pretrained classifier file used as it is (never trained; it only labels images)."""
    arch: Literal["frozen"]
    path: Annotated[str, Field(min_length=1, description="a .tflite or .keras classifier")]


StudentSpec = Annotated[Union[MobileNetSpec, ResNetSpec], Field(discriminator="arch"), Say("model spec")]
TeacherSpec = Annotated[Union[MobileNetTeacher, ResNetTeacher, FrozenTeacher], Field(discriminator="arch"),
                        Say("teacher spec")]


def _unique_teachers(teachers: list) -> list:
    names = [t.name for t in teachers]
    for name in names:
        if names.count(name) > 1 or name == "student":
            raise PydanticCustomError("teacher_name", "teacher names must be unique and not 'student' (each is "
                                      "a file name beside student.keras); {name} is not", {"name": repr(name)})
    return teachers


# --------------------------------------------------------------------------------------------------
# the steps (field order = the notebook's parameters cell)
class StepParams(_Strict):
    profile: str
    seed: Seed


class Data(StepParams):
    """The data step (notebooks/00_data.ipynb): the embedded dataset, or image folders listed for streaming."""
    source: Literal[DATA_SOURCES]
    train_size: Count
    val_size: Count
    holdout_size: Count
    extra_size: Count
    resolution: Positive
    train_dir: str
    val_dir: str
    holdout_dir: str
    extra_dir: str
    val_labels_file: str
    skip_corrupt: bool
    preprocess: Literal[PREPROCESS]
    epoch_size: Annotated[int, Field(ge=0, description="folders: images per training epoch, 0 = all")]


class Baseline(StepParams):
    """The baseline step (notebooks/01_baseline.ipynb): the student and its teachers."""
    student: StudentSpec
    teachers: Annotated[list[TeacherSpec], AfterValidator(_unique_teachers)]
    epochs: Count
    teacher_epochs: Count
    batch_size: Positive
    learning_rate: Rate


class Quantization(StepParams):
    """The quantization step (notebooks/10_quantization.ipynb)."""
    representative_size: Positive
    qat_epochs: Count
    qat_learning_rate: Rate
    batch_size: Positive
    latency_runs: Positive
    warmup_runs: Count
    challenge_width: Width
    challenge_resolution: Positive
    challenge_classes: Positive
    challenge_latency_runs: Positive


class Factorization(StepParams):
    """The factorization step (notebooks/20_factorization.ipynb)."""
    k_values: _nonempty(Count)
    rank_fractions: _nonempty(RankFraction)
    epochs_per_layer: Count
    finetune_size: Count
    finetune_learning_rate: Rate
    batch_size: Positive
    representative_size: Positive
    latency_runs: Positive
    challenge_width: Width
    challenge_resolution: Positive
    challenge_classes: Positive
    challenge_layers: Count
    challenge_rank_fractions: _nonempty(RankFraction)
    challenge_latency_runs: Positive
    greedy_candidates: Positive
    greedy_rank_fractions: _nonempty(RankFraction)
    greedy_latency_target: Annotated[float, Field(gt=0, le=1, description="latency ratio to reach")]


class Distillation(StepParams):
    """The distillation step (notebooks/30_distillation.ipynb)."""
    teachers: _nonempty(str)
    alphas: _nonempty(Fraction)
    seeds: _nonempty(Seed)
    temperature: Rate
    epochs: Count
    batch_size: Positive
    learning_rate: Rate
    representative_size: Positive
    claim_alpha: Fraction
    cost_images: Positive
    time_split: bool
    init: Literal[INITS]


class OpenImages(StepParams):
    """The Open Images pretraining step (notebooks/40_open_images.ipynb)."""
    teacher: str
    pool_multipliers: _nonempty(Width)
    seeds: _nonempty(Seed)
    pretrain_epochs: Count
    finetune_epochs: Count
    alpha: Fraction
    temperature: Rate
    batch_size: Positive
    learning_rate: Rate
    representative_size: Positive
    init: Literal[INITS]


class Benchmark(StepParams):
    """The benchmark step (notebooks/50_benchmark.ipynb)."""
    latency_runs: Positive
    peak_runs: Positive
    per_layer_model: str
    per_layer_runs: Positive
    grid_widths: _nonempty(Width)
    grid_resolutions: _nonempty(Positive)
    grid_runs: Positive


class Stacked(StepParams):
    """The stacked-model step (notebooks/60_stacked.ipynb)."""
    source: Literal[tuple(STACKED_SOURCES)]
    factorize_layers: Count
    rank_fraction: RankFraction
    epochs_per_layer: Count
    finetune_size: Count
    finetune_learning_rate: Rate
    qat_epochs: Count
    qat_learning_rate: Rate
    batch_size: Positive
    representative_size: Positive
    latency_runs: Positive
    width_control: Annotated[bool, Field(description="train the plain width control (the student narrowed to the "
                                                     "stacked model's MACs, trained for as many images) the claim is "
                                                     "judged against")]


class Rule(StepParams):
    """The rule step (notebooks/70_rule.ipynb): the challenge score of every configuration, and the search."""
    search_widths: _nonempty(Width)
    search_resolutions: _nonempty(Positive)
    factorize_layers: Annotated[_nonempty(Count), Field(description="factorized layers at the entry's rank; at most "
                                                                    "the entry's count (reference/entry_figures.csv), "
                                                                    "checked when the step runs")]
    timing_runs: Positive
    draws: Annotated[int, Field(ge=100, description="Monte-Carlo draws per configuration")]


class Summary(StepParams):
    """The summary step (notebooks/90_summary.ipynb)."""


STEP_MODELS: dict[str, type[StepParams]] = {
    "data": Data, "baseline": Baseline, "quantization": Quantization, "factorization": Factorization,
    "distillation": Distillation, "open_images": OpenImages, "stacked": Stacked, "benchmark": Benchmark,
    "rule": Rule, "summary": Summary,
}


# --------------------------------------------------------------------------------------------------
# the profile's own keys (besides global: and the step sections)
def _scheduler(value: str) -> str:
    try:
        return check_scheduler(value)
    except ValueError:
        raise PydanticCustomError("scheduler", f"must be one of {', '.join(SCHEDULERS)} or a Dask address like "
                                  "tcp://HOST:8786") from None


Budgets = create_model("Budgets", __config__=ConfigDict(extra="forbid", strict=True),
                       __doc__="Wall-time budget per step in seconds, recorded in run.json beside the measured "
                               "time; a step over budget is reported, not failed.",
                       **{step: (Annotated[float, Field(gt=0)] | None, None) for step in STEP_MODELS})


class ProfileKeys(_Strict):
    """A profile's keys besides global: and the step sections."""
    description: str = ""
    scheduler: Annotated[str, AfterValidator(_scheduler),
                         Field(description=f"where grid tasks run: {', '.join(SCHEDULERS)} or a Dask address "
                                           "tcp://HOST:8786")] = "local"
    budgets_s: Budgets = Field(default_factory=Budgets)


RESERVED_PROFILE_KEYS = tuple(ProfileKeys.model_fields)


# --------------------------------------------------------------------------------------------------
# reading an annotation: where an error is, what a value must be
def _unwrap(ann) -> tuple[Any, list]:
    """(bare type, constraint metadata) of a possibly Annotated type."""
    meta = []
    while get_origin(ann) is Annotated:
        ann, *extra = get_args(ann)
        for m in extra:
            meta.extend(m.metadata if isinstance(m, FieldInfo) else [m])
    return ann, meta


def _is_model(ann) -> bool:
    return isinstance(ann, type) and issubclass(ann, BaseModel)


def _is_union(ann) -> bool:
    return get_origin(ann) is Union


def _tag(model) -> str:
    return get_args(model.model_fields["arch"].annotation)[0]


def _tags(union) -> list[str]:
    return [_tag(m) for m in get_args(union)]


def keys(model: type[BaseModel]) -> list[str]:
    """A model's keys, its name and arch first."""
    names = list(model.model_fields)
    return [k for k in ("name", "arch") if k in names] + [k for k in names if k not in ("name", "arch")]


@dataclasses.dataclass
class Node:
    path: str             # "teachers[1].width_multipler"
    ann: Any              # the bare type there (None: an unknown key)
    meta: list            # its constraints
    parent: Any           # the model holding the last key
    default: Any = None


def node_at(model: type[BaseModel], loc: tuple) -> Node:
    """Follow a pydantic error location through the annotations; a union's tag is not part of the path."""
    node = Node("", model, [], model)
    for item in loc:
        if isinstance(item, int):
            node.path += f"[{item}]"
            if get_origin(node.ann) is list:
                node.ann, node.meta = _unwrap(get_args(node.ann)[0])
        elif _is_union(node.ann):
            node.ann = next((m for m in get_args(node.ann) if _tag(m) == item), None)
            node.parent = node.ann
        elif _is_model(node.ann):
            node.parent = node.ann
            field = node.ann.model_fields.get(item)
            node.path += f".{item}" if node.path else item
            if field is None:
                node.ann, node.meta = None, []
            else:
                node.ann, node.meta = _unwrap(field.annotation)
                node.meta = list(field.metadata) + node.meta
                arms = get_args(node.ann) if _is_union(node.ann) else ()
                if len(arms) == 2 and type(None) in arms:      # X | None: what X must be
                    ann, more = _unwrap(next(a for a in arms if a is not type(None)))
                    node.ann, node.meta = ann, node.meta + more
                node.default = None if field.is_required() else field.get_default(call_default_factory=True)
        else:
            node.path += f".{item}" if node.path else str(item)
    return node


def interval(meta: list) -> str:
    """'>= 0', '> 0', 'in (0, 1]' from annotated-types constraints; '' without any."""
    lo = next((("(", m.gt) for m in meta if isinstance(m, at.Gt)), None) or next(
        (("[", m.ge) for m in meta if isinstance(m, at.Ge)), None)
    hi = next(((")", m.lt) for m in meta if isinstance(m, at.Lt)), None) or next(
        (("]", m.le) for m in meta if isinstance(m, at.Le)), None)
    if lo and hi:
        return f"in {lo[0]}{lo[1]:g}, {hi[1]:g}{hi[0]}"
    if lo:
        return f"{'>' if lo[0] == '(' else '>='} {lo[1]:g}"
    if hi:
        return f"{'<' if hi[0] == ')' else '<='} {hi[1]:g}"
    return ""


def _say(meta: list) -> str:
    return next((m for m in meta if isinstance(m, Say)), "")


def type_name(ann, meta=()) -> str:
    """'int', 'float', 'list[float]', 'model spec', ..."""
    ann, more = _unwrap(ann)
    meta = [*meta, *more]
    if _is_union(ann) and all(_is_model(m) for m in get_args(ann)):
        return _say(meta) or "spec"
    if get_origin(ann) is Literal:
        return type(get_args(ann)[0]).__name__
    if get_origin(ann) is list:
        return f"list[{type_name(get_args(ann)[0])}]"
    if _is_model(ann):
        return "mapping"
    return getattr(ann, "__name__", str(ann))


def allowed(ann, meta=()) -> str:
    """What a value must be beyond its type: 'one of a, b', '>= 0', 'each in (0, 1]', 'arch: ...'."""
    ann, more = _unwrap(ann)
    meta = [*meta, *more]
    if get_origin(ann) is Literal:
        return "one of " + ", ".join(map(str, get_args(ann)))
    if _is_union(ann) and all(_is_model(m) for m in get_args(ann)):
        return "arch: " + " | ".join(_tags(ann))
    if get_origin(ann) is list:
        inner = allowed(get_args(ann)[0])
        length = next((m.min_length for m in meta if isinstance(m, at.MinLen)), 0)
        return ", ".join(filter(None, ["not empty" if length else "", f"each {inner}" if inner else ""]))
    return interval(meta)


# --------------------------------------------------------------------------------------------------
# error messages
_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}
_TYPE_NAMES = {"int_type": "int", "int_parsing": "int", "float_type": "float", "float_parsing": "float",
               "string_type": "str", "bool_type": "bool", "bool_parsing": "bool", "list_type": "list",
               "model_type": "mapping", "model_attributes_type": "mapping", "dict_type": "mapping"}


def describe_error(model: type[BaseModel], error: dict, default=dataclasses.MISSING) -> tuple[str, str]:
    """(path, what is wrong) for one pydantic error of ``model``: 'teachers[1].width_multipler',
    'unknown key; valid keys: name, arch, width_multiplier, weights'. The path is relative to the model;
    the caller puts the step, the file and the section in front. ``default`` is the top-level key's."""
    node = node_at(model, error["loc"])
    kind, value = error["type"], error.get("input")
    shown = f" = {value!r}" if not isinstance(value, (dict, list)) or kind in _RANGE_ERRORS else ""
    if kind == "extra_forbidden":
        return node.path, f"unknown key; valid keys: {', '.join(keys(node.parent))}"
    if kind == "missing":
        required = [k for k in keys(node.parent) if node.parent.model_fields[k].is_required()]
        return node.path, f"missing; required keys: {', '.join(required)}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = ", ".join(_tags(node.ann))
        if kind == "union_tag_not_found":
            return f"{node.path}.arch", f"missing; must be one of {tags}"
        tag = error["ctx"]["tag"]
        extra = " (a student is trained: frozen is for teachers)" if tag == "frozen" else ""
        return f"{node.path}.arch", f"= {tag!r}: must be one of {tags}{extra}"
    if kind == "literal_error":
        return node.path, f"{shown[1:]}: must be one of {', '.join(map(str, get_args(node.ann)))}"
    if kind in _RANGE_ERRORS:
        say = _say(node.meta)
        return node.path, f"{shown[1:]}: {say + ' ' if say else ''}must be {interval(node.meta)}"
    if kind in _TYPE_NAMES or kind.endswith("_type"):
        expected = type_name(node.ann, node.meta) if node.ann is not None else _TYPE_NAMES.get(kind, kind)
        if _is_union(node.ann):
            expected = f"a {expected} (a mapping with {allowed(node.ann)}, and that arch's keys)"
        if default is dataclasses.MISSING:
            default = node.default
        said = f" (default {default!r})" if default is not None and not isinstance(default, (dict, list)) else ""
        return node.path, f"must be {expected}{said}, got {type(value).__name__} {value!r}"
    if kind == "too_short":
        return node.path, f"{shown[1:] or '= []'}: must not be empty"
    return node.path, f"{shown[1:]}: {error['msg'].removeprefix('Value error, ')}".lstrip(": ")


def error_lines(model: type[BaseModel], exc: ValidationError, defaults: dict | None = None) -> list[tuple]:
    """(top-level key, path, message) for each error of a validation."""
    out = []
    for error in exc.errors():
        top = error["loc"][0] if error["loc"] else ""
        default = (defaults or {}).get(top, dataclasses.MISSING) if len(error["loc"]) == 1 else dataclasses.MISSING
        path, message = describe_error(model, error, default)
        sep = " " if message.startswith(("=", "must")) else ": "
        out.append((top, path, f"{path}{sep}{message}"))
    return out


# --------------------------------------------------------------------------------------------------
# for people and editors: `lpirc steps`, params/profile.schema.json
SPEC_MODELS = (MobileNetSpec, ResNetSpec, FrozenTeacher)


def field_rows(model: type[BaseModel]) -> list[tuple[str, str, str, str]]:
    """(key, type, allowed values, description) per field, in order."""
    return [(name, type_name(f.annotation, f.metadata), allowed(f.annotation, f.metadata), f.description or "")
            for name, f in model.model_fields.items()]


def spec_rows() -> list[tuple[str, list[tuple[str, str, str, Any, str]]]]:
    """Per model-spec architecture: (arch, [(key, type, allowed, default or 'required', description)])."""
    rows = []
    for model in SPEC_MODELS:
        fields = [(name, type_name(f.annotation, f.metadata), allowed(f.annotation, f.metadata),
                   "required" if f.is_required() else f.default, f.description or "")
                  for name, f in model.model_fields.items() if name not in ("arch", "name")]
        rows.append((_tag(model), fields))
    return rows


def profile_json_schema(defaults: dict[str, dict[str, Any]]) -> dict:
    """The JSON schema of a profile file (``params/<profile>.yaml``) for editors: every section and key
    optional, each step key with its notebook default. ``defaults``: per step, the notebook's values."""
    models = [ProfileKeys, *STEP_MODELS.values()]
    _, top = models_json_schema([(m, "validation") for m in models], ref_template="#/$defs/{model}")
    defs = top["$defs"]
    sections = {}
    for step, model in STEP_MODELS.items():
        d = defs[model.__name__]
        d.pop("required", None)
        for key, value in defaults.get(step, {}).items():
            if key in d["properties"]:
                d["properties"][key]["default"] = value
        sections[step] = {"$ref": f"#/$defs/{model.__name__}"}
    seen: dict[str, list] = {}
    for model in STEP_MODELS.values():
        for key, prop in defs[model.__name__]["properties"].items():
            prop = {k: v for k, v in prop.items() if k not in ("default", "title")}
            if prop not in seen.setdefault(key, []):
                seen[key].append(prop)
    glob = {"type": "object", "additionalProperties": False,
            "description": "Applied to every step that has the key; the value must suit each of them.",
            "properties": {k: v[0] if len(v) == 1 else {"allOf": v} for k, v in sorted(seen.items())}}
    own = defs.pop(ProfileKeys.__name__)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "lpirc profile (params/<profile>.yaml)",
            "description": "Generated by `lpirc schema --write` from lpirc.runner.schema and the notebooks' "
                           "parameters cells; do not edit by hand.",
            "type": "object", "additionalProperties": False,
            "properties": {**own["properties"], "global": glob, **sections},
            "$defs": dict(sorted(defs.items()))}
