"""Seed-trials per hour: K seeds of one detector trained stacked (ganad.stacking) against one by one.

Issue 21. For each (detector, data, K) one JSON line: ``solo_per_s`` (seed-trials per second when
the K runs train one after another, as today's grid workers run them), ``stacked_per_s`` (one
``engine.fit_seeds`` of the K), ``speedup``, and the FLOP rate and fraction of the machine's peak
of each. Both variants train the same models (each built under its seed, as a solo run builds
it) for the same steps on real inputs (KDD Cup 99 rows with 121 features, MNIST at 32x32), one
torch thread, rounds interleaved so a change of load hits both alike; the median round counts.
Two grid workers of one thread each run two such stacks side by side, so the per-core ratio
is the grid's. Conv nets are not stacked (``ganad.stacking``): their lines show the fallback.

    python benchmarks/seed_stacking.py --out docs/results/seed_stacking.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from _common import machine, real_inputs
from throughput import peak_gflops

from ganad import engine
from ganad.models import MODELS
from ganad.stacking import why_not_stackable


def build(name: str, spec: Any, seeds: list[int]) -> list[Any]:
    """One model per seed, built as a solo run builds it (under its seed)."""
    out = []
    for s in seeds:
        engine.seed_everything(s)
        out.append(MODELS[name](spec, **({"nz": 16, "width": 32} if spec.kind == "image" else {})))
    return out


def step_flops(model: Any, x: torch.Tensor, batch: int) -> int:
    """FLOPs of one solo train_step (forward and backward of each optimiser step), by torch's counter."""
    from torch.utils.flop_counter import FlopCounterMode

    xb = x[:batch]
    with FlopCounterMode(display=False) as counter:
        model.train_step(xb, xb) if model.paired_batches else model.train_step(xb)
    return int(counter.get_total_flops())


def one_round(name: str, spec: Any, x: Any, k: int, steps: int, batch: int, stacked: bool) -> float:
    seeds = list(range(k))
    models = build(name, spec, seeds)
    opts = [engine.TrainOptions(epochs=1, steps=steps, batch_size=batch, seed=s, progress=False) for s in seeds]
    t = time.perf_counter()
    engine.fit_seeds(models, [x] * k, opts, stack_seeds=stacked)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="ganomaly,egbad,anogan")
    ap.add_argument("--data", default="kdd99-121,mnist-32x32")
    ap.add_argument("--ks", default="3,10")
    ap.add_argument("--steps", type=int, default=150, help="optimiser steps of each seed-trial (rows)")
    ap.add_argument("--image-steps", type=int, default=10, help="optimiser steps of each seed-trial (images)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    peak = peak_gflops(1024)
    inputs = real_inputs(args.data_dir, 20000, split="train", which=tuple(args.data.split(",")))
    lines = []
    for data, (spec, x) in inputs.items():
        steps = args.image_steps if spec.kind == "image" else args.steps
        for name in args.models.split(","):
            probe = build(name, spec, [0])[0]
            reason = why_not_stackable(probe)
            flops = step_flops(probe, torch.as_tensor(x), args.batch)
            for k in (int(v) for v in args.ks.split(",")):
                times: dict[str, list[float]] = {"solo": [], "stacked": []}
                for _ in range(args.rounds):
                    for variant in times:
                        times[variant].append(one_round(name, spec, x, k, steps, args.batch, variant == "stacked"))
                med = {v: statistics.median(t) for v, t in times.items()}
                line: dict[str, Any] = {"detector": name, "data": data, "k": k, "steps": steps, "batch": args.batch}
                line["stacked"] = not reason
                if reason:
                    line["why_not_stacked"] = reason
                for v, sec in med.items():
                    line[f"{v}_per_s"] = round(k / sec, 4)
                    line[f"{v}_seed_trials_per_hour"] = round(3600 * k / sec, 1)
                    gflops = flops * steps * k / sec / 1e9
                    line[f"{v}_gflops"] = round(gflops, 2)
                    line[f"{v}_fraction_of_peak"] = round(gflops / peak["gflops"], 3)
                line["speedup"] = round(med["solo"] / med["stacked"], 2)
                print(json.dumps(line), flush=True)
                lines.append(line)
    if args.out:
        doc = {"machine": machine(1), "peak": peak, "args": vars(args) | {"out": str(args.out)}, "lines": lines}
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
