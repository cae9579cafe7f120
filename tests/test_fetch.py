"""The Open Images fetcher against a real HTTP server on 127.0.0.1, including failure cases."""
import base64
import hashlib
import http.server
import io
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from lpirc import fetch
from lpirc.loaders import DataError


def jpeg_bytes(seed):
    img = np.random.default_rng(seed).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG")
    return buf.getvalue()


def b64md5(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode()


class Server:
    """Serves /img/<id>.jpg; behaviours per id: 'corrupt' (wrong bytes), 'drop_once' (cut mid-file on
    the first request), 'missing' (404). Counts requests."""

    def __init__(self, images, behaviour):
        self.images, self.behaviour, self.requests = images, behaviour, {}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                image_id = self.path.rsplit("/", 1)[-1].removesuffix(".jpg")
                outer.requests[image_id] = outer.requests.get(image_id, 0) + 1
                kind = outer.behaviour.get(image_id)
                if kind == "missing" or image_id not in outer.images:
                    self.send_error(404)
                    return
                data = outer.images[image_id]
                if kind == "corrupt":
                    data = data[:-10] + b"0123456789"
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if kind == "drop_once" and outer.requests[image_id] == 1:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def served(tmp_path):
    ids = [f"img{i:03d}" for i in range(8)]
    images = {i: jpeg_bytes(n) for n, i in enumerate(ids)}
    behaviour = {"img005": "corrupt", "img006": "drop_once", "img007": "missing"}
    server = Server(images, behaviour)
    csv_path = tmp_path / "list.csv"
    lines = ["ImageID,Subset,OriginalURL,OriginalMD5"]
    for i in ids:
        lines.append(f"{i},validation,{server.url}/img/{i}.jpg,{b64md5(images[i])}")
    csv_path.write_text("\n".join(lines) + "\n")
    yield server, csv_path, ids
    server.close()


def test_fetch_clean_failures_and_resume(served, tmp_path):
    server, csv_path, ids = served
    dest = tmp_path / "dest"
    rep = fetch.fetch_open_images("validation", 8, dest, image_list=str(csv_path), backoff_s=0.01, progress=False)
    assert sorted(rep.downloaded) == ids[:5] + ["img006"]            # dropped once, retried, completed
    assert set(rep.failed) == {"img005", "img007"}
    assert "MD5 mismatch" in rep.failed["img005"] and "404" in rep.failed["img007"]
    assert rep.retries >= 1 and server.requests["img006"] == 2
    assert server.requests["img007"] == 1                           # a 404 is not retried
    assert not (dest / "img005.jpg").exists() and not (dest / "img007.jpg").exists()
    assert not (dest / ".partial").exists() or not any((dest / ".partial").iterdir())
    for i in rep.downloaded:
        assert fetch.md5_b64(dest / f"{i}.jpg") == b64md5(server.images[i])
    assert (dest / "fetch_report.json").exists()

    before = dict(server.requests)
    again = fetch.fetch_open_images("validation", 8, dest, image_list=str(csv_path), backoff_s=0.01, progress=False)
    assert sorted(again.skipped) == sorted(rep.downloaded) and not again.downloaded
    # only the two failing images were asked for again
    assert {k: server.requests[k] - before.get(k, 0) for k in server.requests if server.requests[k] != before.get(k, 0)} \
        == {"img005": 1, "img007": 1}


def test_limit_and_cli_exit_code(served, tmp_path, root):
    server, csv_path, ids = served
    r = subprocess.run([sys.executable, "-m", "lpirc", "data", "fetch", "open-images", "--limit", "3", "--dest",
                        str(tmp_path / "d"), "--image-list", str(csv_path)], capture_output=True, text=True,
                       cwd=root, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "3 requested: 3 downloaded" in r.stdout
    r = subprocess.run([sys.executable, "-m", "lpirc", "data", "fetch", "open-images", "--limit", "8", "--dest",
                        str(tmp_path / "d"), "--image-list", str(csv_path), "--retries", "1"],
                       capture_output=True, text=True, cwd=root, timeout=120)
    assert r.returncode == 1 and "FAILED img005" in r.stdout and "3 already complete" in r.stdout


def test_never_writes_outside_dest(tmp_path):
    with pytest.raises(DataError, match="not a plain identifier"):
        fetch.target_path(tmp_path, "../../etc/passwd")
    rows = [{"ImageID": "../evil", "OriginalURL": "http://127.0.0.1:9/x", "OriginalMD5": "x"}]
    rep = fetch.fetch_images(rows, tmp_path / "d", progress=False)
    assert "../evil" in rep.failed and not (tmp_path / "evil.jpg").exists()


def test_bad_image_list(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("ImageID,URL\nx,y\n")
    with pytest.raises(DataError, match="lacks columns"):
        fetch.read_image_list(str(bad))
    with pytest.raises(DataError, match="cannot read image list"):
        fetch.read_image_list(str(tmp_path / "none.csv"))
