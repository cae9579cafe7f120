"""lpirc: reproducing Hyperconnect's LPIRC 2018 entry as a Jupyter Book.

One module per idea: data (the embedded dataset), loaders and manifest (real data), models,
quantize, evaluate, bench, factorize, distill, ...; the runner (steps, parameters, cache,
executor, book, CLI) is the subpackage lpirc.runner, which the science modules never import.
"""
__version__ = "0.1.0"
