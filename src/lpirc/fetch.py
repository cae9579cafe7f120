"""Downloading an Open Images subset: parallel, resumable, checksum-verified, confined to DEST.

Open Images publishes, per split, a CSV listing every image with its original URL and the base64
MD5 of the original file. ``fetch_images`` downloads the first N rows into DEST/<ImageID>.jpg:

* files already present with the right MD5 are skipped, so a rerun downloads nothing new;
* transient failures (dropped connections, timeouts, HTTP 5xx) are retried with exponential
  back-off; a 404 is reported at once;
* each download goes to DEST/.partial/ first and is renamed into place only when its MD5 matches;
  a mismatched or partial file is deleted and reported, never left behind;
* an ImageID that is not a plain identifier, or a path that would leave DEST, is refused.
"""
from __future__ import annotations

import base64
import concurrent.futures as cf
import csv
import dataclasses
import hashlib
import http.client
import io
import re
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from lpirc.loaders import DataError
from lpirc.results import write_json

SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
IMAGE_LISTS = {
    "validation": "https://storage.googleapis.com/openimages/2018_04/validation/validation-images-with-rotation.csv",
    "test": "https://storage.googleapis.com/openimages/2018_04/test/test-images-with-rotation.csv",
    "train": "https://storage.googleapis.com/openimages/2018_04/train/train-images-boxable-with-rotation.csv",
}


@dataclasses.dataclass
class FetchReport:
    dest: Path
    requested: int = 0
    downloaded: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    retries: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        lines = [f"{self.requested} requested: {len(self.downloaded)} downloaded, {len(self.skipped)} already "
                 f"complete, {len(self.failed)} failed ({self.retries} retries) -> {self.dest}"]
        lines += [f"  FAILED {k}: {v}" for k, v in sorted(self.failed.items())]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"dest": str(self.dest), "requested": self.requested, "downloaded": self.downloaded,
                "skipped": self.skipped, "failed": self.failed, "retries": self.retries}


class _Permanent(Exception):
    pass


def _open(url: str, timeout: float):
    if url.startswith(("http://", "https://")):
        return urllib.request.urlopen(url, timeout=timeout)
    return open(url, "rb")


def read_image_list(source: str, limit: int | None = None, timeout: float = 60) -> list[dict]:
    """Rows (ImageID, OriginalURL, OriginalMD5) of an Open Images image-list CSV, from a URL or a path."""
    try:
        with _open(source, timeout) as f:
            text = io.TextIOWrapper(f, encoding="utf-8", newline="")
            reader = csv.DictReader(text)
            missing = {"ImageID", "OriginalURL", "OriginalMD5"} - set(reader.fieldnames or [])
            if missing:
                raise DataError(f"image list {source} lacks columns {sorted(missing)}")
            rows = []
            for row in reader:
                rows.append({"ImageID": row["ImageID"], "OriginalURL": row["OriginalURL"],
                             "OriginalMD5": row["OriginalMD5"]})
                if limit and len(rows) >= limit:
                    break
            return rows
    except (OSError, urllib.error.URLError) as exc:
        raise DataError(f"cannot read image list {source}: {exc}; check the URL or path, "
                        "or pass a local copy with --image-list") from exc


def md5_b64(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return base64.b64encode(h.digest()).decode()


def target_path(dest: Path, image_id: str) -> Path:
    if not SAFE_ID.match(image_id):
        raise DataError(f"refusing image id {image_id!r}: not a plain identifier")
    path = (dest / f"{image_id}.jpg").resolve()
    if not path.is_relative_to(dest.resolve()):
        raise DataError(f"refusing {image_id!r}: its path would leave {dest}")
    return path


def _download_once(url: str, part: Path, timeout: float) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as out:
            expected = resp.headers.get("Content-Length")
            got = 0
            while block := resp.read(1 << 16):
                out.write(block)
                got += len(block)
            if expected is not None and got != int(expected):
                raise http.client.IncompleteRead(b"", int(expected) - got)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code == 429:
            raise ConnectionError(f"HTTP {exc.code}") from exc
        raise _Permanent(f"HTTP {exc.code} {exc.reason}") from exc


def _fetch_one(row: dict, dest: Path, retries: int, backoff_s: float, timeout: float) -> tuple[str, str, int]:
    """(status, detail, retries used): status in downloaded / skipped / failed."""
    image_id = row["ImageID"]
    try:
        final = target_path(dest, image_id)
    except DataError as exc:
        return "failed", str(exc), 0
    if final.exists():
        if md5_b64(final) == row["OriginalMD5"]:
            return "skipped", "", 0
        final.unlink()   # a stale or corrupt copy: fetch again
    part = dest / ".partial" / f"{image_id}.part"
    part.parent.mkdir(parents=True, exist_ok=True)
    used = 0
    for attempt in range(retries + 1):
        try:
            _download_once(row["OriginalURL"], part, timeout)
            break
        except _Permanent as exc:
            part.unlink(missing_ok=True)
            return "failed", str(exc), used
        except (ConnectionError, http.client.HTTPException, urllib.error.URLError, socket.timeout,
                TimeoutError, OSError) as exc:
            part.unlink(missing_ok=True)
            if attempt == retries:
                return "failed", f"gave up after {retries + 1} attempts: {exc}", used
            used += 1
            time.sleep(backoff_s * 2 ** attempt)
    got = md5_b64(part)
    if got != row["OriginalMD5"]:
        part.unlink(missing_ok=True)
        return "failed", f"MD5 mismatch (expected {row['OriginalMD5']}, got {got}); file removed", used
    part.replace(final)
    return "downloaded", "", used


def fetch_images(rows: list[dict], dest: Path, workers: int = 8, retries: int = 3, backoff_s: float = 0.5,
                 timeout: float = 30, progress: bool = True) -> FetchReport:
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    report = FetchReport(dest=dest, requested=len(rows))
    bar = None
    if progress:
        bar = tqdm(total=len(rows), desc="fetching images", unit="img")
    with cf.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(_fetch_one, row, dest, retries, backoff_s, timeout): row["ImageID"] for row in rows}
        for fut in cf.as_completed(futures):
            image_id = futures[fut]
            status, detail, used = fut.result()
            report.retries += used
            if status == "downloaded":
                report.downloaded.append(image_id)
            elif status == "skipped":
                report.skipped.append(image_id)
            else:
                report.failed[image_id] = detail
            if bar:
                bar.update(1)
    if bar:
        bar.close()
    partial = dest / ".partial"
    if partial.exists() and not any(partial.iterdir()):
        partial.rmdir()
    return report


def fetch_open_images(split: str, limit: int, dest: Path, image_list: str | None = None, **kwargs) -> FetchReport:
    if split not in IMAGE_LISTS and image_list is None:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(IMAGE_LISTS)}")
    if limit is not None and limit < 1:
        raise DataError("--limit must be >= 1")
    rows = read_image_list(image_list or IMAGE_LISTS[split], limit)
    report = fetch_images(rows, dest, **kwargs)
    write_json(Path(dest) / "fetch_report.json", report.to_dict())
    return report
