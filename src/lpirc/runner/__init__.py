"""The runner: steps, parameters, cache keys, the papermill executor, the book build and the CLI.

The science modules (``lpirc.data``, ``lpirc.models``, ``lpirc.quantize``, ...) import nothing from
here; notebooks import only :mod:`lpirc.runner.context` (``start_step``) from the runner.
"""
