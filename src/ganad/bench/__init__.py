"""Benchmark grids, the results store and reports (``ganad benchmark / results / report``)."""

from ganad.bench.grid import GridSpec, Trial, expand, load_grid
from ganad.bench.runner import run_grid, run_trial

__all__ = ["GridSpec", "Trial", "expand", "load_grid", "run_grid", "run_trial"]
