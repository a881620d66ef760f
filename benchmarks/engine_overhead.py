"""GANomaly training throughput through ganad's engine vs a plain PyTorch loop.

Prints JSON. Both loops drive the same networks and the same ``train_step`` at
32x32x1, batch 64 (the GANomaly paper's MNIST setting), so the difference is
what the engine adds: shuffling, progress, loss bookkeeping, the per-epoch log
and checkpoint. Each side runs ``--repeats`` times, interleaved, and the median
is reported. Scoring ms/image is measured in eval mode over the same images.

Usage: python benchmarks/engine_overhead.py [--images 1280] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _common import cpu_model, machine

from ganad import engine
from ganad.data.types import InputSpec
from ganad.models import GANomaly


def plain_loop(model: GANomaly, x: torch.Tensor, bs: int, seed: int) -> float:
    """The loop a researcher would write by hand; returns seconds."""
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    perm = torch.randperm(len(x), generator=gen)
    for b in range(len(x) // bs):
        model.train_step(x[perm[b * bs : (b + 1) * bs]])
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1280, help="images per timed epoch (multiple of 64)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    spec = InputSpec("image", (1, args.size, args.size))
    x = torch.rand(args.images, *spec.shape) * 2 - 1  # synthetic: speed does not depend on content
    device = engine.select_device("auto")

    def fresh() -> GANomaly:
        torch.manual_seed(0)
        return GANomaly(spec).to(device)

    plain_s, engine_s = [], []
    opts = engine.TrainOptions(epochs=1, batch_size=args.batch_size, progress=False)
    plain_loop(fresh(), x[: args.batch_size * 2], args.batch_size, 0)  # warm-up
    for r in range(args.repeats):
        plain_s.append(plain_loop(fresh(), x.to(device), args.batch_size, r))
        with tempfile.TemporaryDirectory() as tmp:  # with checkpoint + log, as a real run
            m = fresh()
            t0 = time.perf_counter()
            engine.fit(m, x.numpy(), engine.TrainOptions(**{**opts.__dict__, "seed": r}), run_dir=Path(tmp))
            engine_s.append(time.perf_counter() - t0)
    m = fresh()
    engine.score(m, x[:128].numpy())  # warm-up
    t0 = time.perf_counter()
    engine.score(m, x.numpy(), batch_size=args.batch_size)
    score_s = time.perf_counter() - t0
    n_trained = (args.images // args.batch_size) * args.batch_size
    plain_ips = n_trained / statistics.median(plain_s)
    engine_ips = n_trained / statistics.median(engine_s)
    print(
        json.dumps(
            {
                "benchmark": "ganomaly_engine_overhead",
                "input": list(spec.shape),
                "batch_size": args.batch_size,
                "images_per_epoch": n_trained,
                "repeats": args.repeats,
                "device": str(device),
                "threads": torch.get_num_threads(),
                "cpu": cpu_model(),
                "torch": torch.__version__,
                "machine": machine(),
                "plain_images_per_s": round(plain_ips, 1),
                "engine_images_per_s": round(engine_ips, 1),
                "engine_overhead_pct": round(100 * (1 - engine_ips / plain_ips), 2),
                "score_ms_per_image": round(1000 * score_s / len(x), 3),
                "plain_seconds": [round(s, 3) for s in plain_s],
                "engine_seconds": [round(s, 3) for s in engine_s],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
