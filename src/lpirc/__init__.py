"""lpirc: reproducing Hyperconnect's LPIRC 2018 entry as a Jupyter Book.

One module per job, in layers: each module imports only modules of the layers below its own (the
contract is [tool.importlinter] in pyproject.toml), so an edit reruns only the steps whose notebooks
import that module or one above it. From the bottom: core utilities (paths, results, report, ...),
statistics, tfutil (the one lazy TensorFlow import), runtime and grid, the data (loaders, stream, data),
TFLite files (tflite, flatbuffer, bench), networks (models, weights), conversion and evaluation, the
techniques and latency (quantize, baseline, distill, factorize, profiler, projection), pretrain, the
chapters that combine them, and on top the runner (steps, parameters, cache, executor, book, CLI:
the subpackage lpirc.runner, which the science modules never import).
"""
__version__ = "0.1.0"
