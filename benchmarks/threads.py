"""Torch threads for one ``ganad train``: the default ("the cores not already busy") against 1 and all.

Issue 19 found the quick start 3-15x slower at torch's default thread count on a 2-core machine
with other work running. ganad's default is now :func:`ganad.resources.free_cores`; this script
measures it beside ``--threads 1`` and ``--threads <usable cores>`` on the same command, the
three interleaved run by run so a change of load hits all alike, and prints one JSON document
(``--out`` also writes it) with the load average and the thread count the default chose. Run it
on an idle machine and on a loaded one; ``--load-note`` records what else was running.

    python benchmarks/threads.py --repeats 3 --load-note "idle" --out docs/results/threads_idle.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine

from ganad.resources import free_cores, usable_cores

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "quickstart.yaml"), help="the run to time")
    ap.add_argument("--set", action="append", default=[], help="extra `ganad train` arguments (repeatable)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per variant (median reported)")
    ap.add_argument("--load-note", default="", help="what else ran on the machine")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    return ap.parse_args(argv)


def one_run(config: str, extra: list[str], threads: int | None) -> dict[str, float]:
    """Wall and training seconds of one ``ganad train`` in a fresh process, and the threads it used."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "ganad.cli", "train", "--config", config, "--out", tmp + "/run", "-q", *extra]
        env = {k: v for k, v in os.environ.items() if k != "GANAD_NUM_THREADS"}  # the default is what we time
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        subprocess.run(cmd + (["--threads", str(threads)] if threads else []), check=True, capture_output=True, env=env)
        wall = time.perf_counter() - t0
        metrics = json.loads((Path(tmp) / "run" / "metrics.json").read_text())
    return {"wall_s": wall, "train_s": metrics["train_seconds"], "threads": metrics["threads"], "load_1m": load}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    cores = usable_cores()
    variants = {"default": None, "threads-1": 1, f"threads-{cores}": cores}
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in variants}
    one_run(args.config, args.set, 1)  # warm-up: file caches, imports
    for _ in range(args.repeats):
        for name, n in variants.items():
            runs[name].append(one_run(args.config, args.set, n))
    results = {
        name: {
            "train_s": statistics.median(r["train_s"] for r in rs),
            "wall_s": statistics.median(r["wall_s"] for r in rs),
            "threads_used": sorted({int(r["threads"]) for r in rs}),
            "runs": rs,
        }
        for name, rs in runs.items()
    }
    doc = {
        "benchmark": "threads",
        "command": f"ganad train --config {Path(args.config).name} " + " ".join(args.set),
        "machine": machine(),
        "usable_cores": cores,
        "free_cores_at_start": free_cores(),
        "load": {"note": args.load_note},
        "results": results,
        "speedup_default_vs": {
            name: round(results[name]["train_s"] / results["default"]["train_s"], 2) for name in variants
        },
    }
    text = json.dumps(doc, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return doc


if __name__ == "__main__":
    main()
