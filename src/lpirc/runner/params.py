"""Run parameters: profiles, merging, and validation before any notebook runs.

Precedence (lowest first): the notebook's own ``parameters`` cell <- ``global:`` of
``params/<profile>.yaml`` (applied to every step that has the key) <- the profile's per-step section
<- ``--set step.key=value`` (or ``--set key=value`` for a global key). Values are YAML.

Validation is strict on purpose and happens before anything runs: the merged values of every step
are checked against its model in ``lpirc.runner.schema`` (types, ranges, choices, the keys of nested
model specs). Each problem is reported with the file it came from (``params/<profile>.yaml``,
``--set`` or the notebook), the key's full path and what is allowed.
"""
from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from lpirc.runner import schema


class ParameterError(ValueError):
    """A profile or --set override that cannot be used; the message says what to change."""


@dataclass(frozen=True)
class Param:
    name: str
    default: object
    notebook: str = ""   # where the default is written: notebooks/<file>.ipynb (its type: lpirc.runner.schema)


def notebook_parameters(notebook: Path) -> dict[str, Param]:
    """The literal assignments in the notebook's cell tagged ``parameters``."""
    nb = json.loads(Path(notebook).read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ParameterError(f"{notebook} must have exactly one cell tagged 'parameters', found {len(cells)}")
    source = "".join(cells[0]["source"])
    params = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            try:
                value = ast.literal_eval(node.value)
            except ValueError as exc:
                raise ParameterError(f"{notebook}: parameter {name!r} must be a literal") from exc
            params[name] = Param(name, value, f"notebooks/{Path(notebook).name}")
    return params


def parse_set(items: list[str]) -> dict[str, dict]:
    """``["distillation.alpha=0.5", "seed=1"]`` -> {"distillation": {"alpha": 0.5}, "global": {"seed": 1}}."""
    out: dict[str, dict] = {}
    for item in items or []:
        if "=" not in item:
            raise ParameterError(f"--set {item!r}: expected KEY=VALUE, for example --set distillation.alpha=0.5")
        key, raw = item.split("=", 1)
        step, _, name = key.rpartition(".")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ParameterError(f"--set {item!r}: value is not valid YAML ({exc})") from exc
        out.setdefault(step or "global", {})[name] = value
    return out


def load_profile(path: Path) -> dict:
    path = Path(path)
    if not path.exists():
        available = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ParameterError(f"profile {path.stem!r} not found at {path}; available: {', '.join(available)}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ParameterError(f"profile {path} is not valid YAML{where}: "
                             f"{getattr(exc, 'problem', exc)}; fix the file and rerun") from exc
    if not isinstance(data, dict):
        raise ParameterError(f"profile {path} must be a mapping of sections (global:, data:, ...)")
    return data




def check_profile_keys(profile: dict, source: str) -> None:
    """The profile's own keys (description, scheduler, budgets_s) against the schema."""
    own = {k: v for k, v in profile.items() if k in schema.RESERVED_PROFILE_KEYS and v is not None}
    try:
        schema.ProfileKeys.model_validate(own)
    except ValidationError as exc:
        raise ParameterError("\n".join(f"{source}: {line}" for _, _, line in
                                        schema.error_lines(schema.ProfileKeys, exc))) from None


def merge(step_params: dict[str, dict[str, Param]], profile: dict, overrides: dict, *,
          profile_name: str = "profile") -> dict[str, dict]:
    """Merged, validated parameters per step. Raises ParameterError naming the file (``profile_name``,
    ``--set`` or the notebook), the key's path and the allowed keys or values.

    Values are passed on as written (a model spec is not filled in with its defaults), except that an
    int given for a float parameter becomes a float."""
    merged = {step: {k: p.default for k, p in params.items()} for step, params in step_params.items()}
    # where each value came from: (file, section)
    origin = {(step, k): (p.notebook or f"the {step} notebook", step)
              for step, params in step_params.items() for k, p in params.items()}
    all_keys = sorted({k for params in step_params.values() for k in params})
    for source_name, source in ((profile_name, profile), ("--set", overrides)):
        for section, values in source.items():
            if values is None:
                continue
            if not isinstance(values, dict):
                raise ParameterError(f"{source_name}: {section}: expected a mapping of parameters (key: value), "
                                     f"got {type(values).__name__} {values!r}")
            if section == "global":
                for key, value in values.items():
                    targets = [s for s, params in step_params.items() if key in params]
                    if not targets:
                        raise ParameterError(
                            f"{source_name}: unknown parameter {key!r} (global); no step has it. "
                            f"Known parameters: {', '.join(all_keys)}")
                    for s in targets:
                        merged[s][key] = value
                        origin[(s, key)] = (source_name, "global")
                continue
            if section not in step_params:
                raise ParameterError(f"{source_name}: unknown step {section!r}; steps: {', '.join(step_params)}")
            for key, value in values.items():
                if key not in step_params[section]:
                    raise ParameterError(
                        f"{source_name}: unknown parameter {key!r} for step {section!r}; "
                        f"allowed: {', '.join(sorted(step_params[section]))}")
                merged[section][key] = value
                origin[(section, key)] = (source_name, section)
    problems = []
    for step, values in merged.items():
        model = schema.STEP_MODELS.get(step)
        if model is None:
            raise ParameterError(f"step {step!r} has no parameter schema; add its model to STEP_MODELS in "
                                 "src/lpirc/runner/schema.py")
        try:
            checked = model.model_validate(values)
        except ValidationError as exc:
            defaults = {k: p.default for k, p in step_params[step].items()}
            for top, _, line in schema.error_lines(model, exc, defaults):
                where, section = origin.get((step, top), (profile_name, step))
                text = f"{where}: {section}.{line}"
                if text not in problems:
                    problems.append(text)
            continue
        for key, value in values.items():
            if isinstance(value, int) and not isinstance(value, bool) and isinstance(getattr(checked, key), float):
                values[key] = float(value)
    if problems:
        raise ParameterError("\n".join(problems))
    return merged
