"""Dataset manifests (data_manifest/*.yaml) and checking a local copy against one."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import yaml

from lpirc.data import array_digest
from lpirc.loaders import DataError
from lpirc.paths import project_root


def manifest_dir() -> Path:
    return project_root() / "data_manifest"


def load_all() -> dict[str, dict]:
    return {p.stem: yaml.safe_load(p.read_text()) for p in sorted(manifest_dir().glob("*.yaml"))}


def load(name: str) -> dict:
    manifests = load_all()
    if name not in manifests:
        raise DataError(f"no manifest {name!r} in {manifest_dir()}; known: {', '.join(manifests)}")
    return manifests[name]


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


@dataclasses.dataclass
class Report:
    name: str
    path: Path
    checked: list[str] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        head = f"{self.name} at {self.path}: " + ("OK" if self.ok else f"{len(self.problems)} problem(s)")
        return "\n".join([head] + [f"  ok: {c}" for c in self.checked] + [f"  PROBLEM: {p}" for p in self.problems])


def verify(name: str, path: Path) -> Report:
    """Check files and checksums the manifest lists; a missing folder is an error, not a report."""
    m = load(name)
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path} does not exist or is not a folder; {m.get('how_to_obtain', '')}".strip())
    report = Report(name, path)
    for entry in m.get("files", []) or []:
        f = path / entry["name"]
        if not f.exists():
            if not entry.get("optional"):
                report.problems.append(f"{entry['name']} missing")
            continue
        for algo in ("sha256", "md5"):
            if algo in entry:
                got = file_digest(f, algo)
                if got != entry[algo]:
                    report.problems.append(f"{entry['name']}: {algo} {got} does not match the manifest's "
                                           f"{entry[algo]}; the file is corrupt or a different version")
                else:
                    report.checked.append(f"{entry['name']} {algo}")
    layout = m.get("layout", {}) or {}
    if m.get("checksums") == "dataset.json":
        _verify_embedded(path, layout, report)
    if "labels_file" in layout:
        labels = path / layout["labels_file"]
        if not labels.exists():
            report.problems.append(f"ground-truth file {layout['labels_file']} missing")
        else:
            n_lines = sum(1 for line in labels.read_text().splitlines() if line.strip())
            report.checked.append(f"{layout['labels_file']}: {n_lines} lines")
    if "expected_images" in layout:
        n = sum(1 for _ in path.glob(layout.get("image_glob", "*")))
        if n != layout["expected_images"]:
            report.problems.append(f"found {n} images matching {layout.get('image_glob')}, "
                                   f"expected {layout['expected_images']}")
        else:
            report.checked.append(f"{n} images")
    return report


def _verify_embedded(path: Path, layout: dict, report: Report) -> None:
    record_path = path / "dataset.json"
    if not record_path.exists():
        report.problems.append("dataset.json missing; regenerate with lpirc run --only data")
        return
    record = json.loads(record_path.read_text())
    for split, info in record["splits"].items():
        for kind in ("x", "y"):
            f = path / f"{split}_{kind}.npy"
            if not f.exists():
                report.problems.append(f"{f.name} missing")
                continue
            try:
                digest = array_digest(np.load(f))
            except ValueError as exc:
                report.problems.append(f"{f.name} unreadable: {exc}")
                continue
            if digest != info[f"{kind}_sha256"]:
                report.problems.append(f"{f.name}: sha256 of the array does not match dataset.json; "
                                       "regenerate with lpirc run --only data --force data")
            else:
                report.checked.append(f"{f.name} sha256")
