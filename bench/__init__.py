"""Doorstep's benchmarks: `python -m bench [FILTER ...]` (or `make bench`); see bench/README.md.

Each module in MODULES registers its benchmarks with `bench.common.benchmark`; add a new module here.
"""

import importlib

MODULES = ("bench.imports", "bench.organizing", "bench.progress", "bench.sync", "bench.turfs", "bench.walks")


def load() -> None:
    """Import every benchmark module, filling bench.common.REGISTRY."""
    for module in MODULES:
        importlib.import_module(module)
