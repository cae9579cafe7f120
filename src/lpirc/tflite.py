"""A .tflite file: checked, and run with LiteRT as a batch-1 classifier, the project's own or a third party's.

The challenge ran batch 1 on one core, so does this: single-thread interpreter, one image per
invoke. Input and output tensors may be float32, int8 or uint8; their quantization parameters are
read from the model. Float inputs take (x - 127.5) / 127.5, quantized inputs that value quantized
with the model's own scale and zero point (for Google's uint8 MobileNets, scale 1/128 and zero
point 128, that is the raw pixel). Scoring against labels is lpirc.evaluate's.

The timing loop (:func:`timed_rounds`) is here too, not in lpirc.bench: a timing session is a fresh
process, and this module's imports are light.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from PIL import Image
from tqdm import tqdm

from lpirc import stream
from lpirc.errors import ModelFileError
from lpirc.tfutil import native_stderr_to_log

TFLITE_IDENTIFIER = b"TFL3"


def check_tflite_file(path: Path | str) -> Path:
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file {path} does not exist")
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER:
        raise ModelFileError(f"{path} is not a TFLite flatbuffer (no 'TFL3' identifier at byte 4); "
                             "pass a .tflite file, for example one under results/<profile>/quantization/")
    return path


def interpreter(path: Path | str, num_threads: int = 1):
    path = check_tflite_file(path)
    # LiteRT prints "Created TensorFlow Lite XNNPACK delegate" on fd 2; keep it out of the book.
    with native_stderr_to_log():
        it = Interpreter(model_path=str(path), num_threads=num_threads)
        it.allocate_tensors()
    return it


def _random_input(detail, rng):
    shape, dtype = detail["shape"], np.dtype(detail["dtype"])
    if dtype == np.float32:
        return rng.uniform(-1, 1, size=shape).astype(np.float32)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, size=shape).astype(dtype)


class _Timed:
    def __init__(self, path: Path, num_threads: int, seed: int = 0):
        self.it = interpreter(path, num_threads)
        rng = np.random.default_rng(seed)
        for d in self.it.get_input_details():
            self.it.set_tensor(d["index"], _random_input(d, rng))
        self.times: list[float] = []

    def once(self) -> float:
        t0 = time.perf_counter_ns()
        self.it.invoke()
        return (time.perf_counter_ns() - t0) / 1e6


def timed_rounds(paths, runs: int, warmup: int, num_threads: int = 1, time_budget_s: float | None = None,
                 order_seed: int = 0) -> list[list[float]]:
    """Every model of ``paths`` invoked on a random input ``warmup`` times, then ``runs`` rounds in which
    each runs once, in a new random order every round (``order_seed`` draws the orders); [model] -> its
    times (ms). ``time_budget_s`` stops early, after at least 10 rounds.

    lpirc.bench's timing loop: a timing session is a fresh process that runs only this, and importing
    this module (LiteRT, numpy, PIL) takes a fifth of a second, importing lpirc.bench (pandas, scipy) about
    1.3 s more on the test host, paid by each of a timing table's five sessions."""
    if runs < 1:
        raise ValueError("runs must be >= 1")
    models = [_Timed(p, num_threads, seed=i) for i, p in enumerate(paths)]
    for _ in range(warmup):
        for m in models:
            m.once()
    rng = np.random.default_rng(order_seed)
    start = time.perf_counter()
    for r in range(runs):
        for i in rng.permutation(len(models)):
            models[i].times.append(models[i].once())
        if time_budget_s and r >= 9 and time.perf_counter() - start > time_budget_s:
            break
    return [m.times for m in models]


class TFLiteClassifier:
    """Batch-1 classifier over a .tflite file. ``logits(images_uint8)`` returns float scores."""

    def __init__(self, path: Path | str, num_threads: int = 1):
        self.path = Path(path)
        self.it = interpreter(path, num_threads)
        inp = self.it.get_input_details()
        out = self.it.get_output_details()
        if len(inp) != 1 or len(out) != 1:
            raise ModelFileError(f"{path}: expected one input and one output, got {len(inp)} and {len(out)}")
        self.inp, self.out = inp[0], out[0]
        shape = self.inp["shape"]
        if len(shape) != 4 or shape[3] != 3:
            raise ModelFileError(f"{path}: expected an NHWC RGB image input, got shape {list(shape)}")
        self.height, self.width = int(shape[1]), int(shape[2])
        self.num_outputs = int(self.out["shape"][-1])
        self.input_dtype = np.dtype(self.inp["dtype"])
        self.output_dtype = np.dtype(self.out["dtype"])

    def describe(self) -> dict:
        return {"path": str(self.path), "input_shape": [1, self.height, self.width, 3],
                "input_dtype": self.input_dtype.name, "input_quantization": list(self.inp["quantization"]),
                "output_dtype": self.output_dtype.name, "num_outputs": self.num_outputs}

    def _prepare(self, image_uint8: np.ndarray) -> np.ndarray:
        if image_uint8.shape[:2] != (self.height, self.width):
            image_uint8 = np.asarray(Image.fromarray(image_uint8).resize((self.width, self.height),
                                                                          Image.BILINEAR))
        x = (image_uint8.astype(np.float32) - 127.5) / 127.5
        if self.input_dtype == np.float32:
            return x[None]
        scale, zero = self.inp["quantization"]
        if scale == 0:
            raise ModelFileError(f"{self.path}: quantized input without quantization parameters; "
                                 "re-convert the model with its input quantization (scale, zero point) recorded")
        info = np.iinfo(self.input_dtype)
        q = np.clip(np.round(x / scale + zero), info.min, info.max)
        return q.astype(self.input_dtype)[None]

    def _read_output(self) -> np.ndarray:
        y = self.it.get_tensor(self.out["index"])[0]
        if self.output_dtype != np.float32:
            scale, zero = self.out["quantization"]
            y = (y.astype(np.float32) - zero) * (scale if scale else 1.0)
        return y.reshape(-1).astype(np.float32)

    def logits(self, images_uint8: np.ndarray, progress: bool = False) -> np.ndarray:
        """Scores for uint8 images: an array, or a streamed FolderSplit (decoded batch by batch)."""
        if stream.is_streamed(images_uint8) and len(images_uint8):
            return np.concatenate([self.logits(batch) for batch in
                                   images_uint8.batches(64, model_input=False).as_numpy_iterator()])
        out = np.empty((len(images_uint8), self.num_outputs), np.float32)
        iterator = range(len(images_uint8))
        if progress:
            iterator = tqdm(iterator, desc=f"evaluating {self.path.name}", mininterval=2.0)
        for i in iterator:
            self.it.set_tensor(self.inp["index"], self._prepare(images_uint8[i]))
            self.it.invoke()
            out[i] = self._read_output()
        return out
