"""GANomaly on MNIST one-class-normal (Deep SVDD protocol): AUROC per class, mean +/- std over seeds.

Each trial is an ordinary ``ganad train`` run folder under ``--out``; a trial
whose ``metrics.json`` exists is skipped, so the script can be re-run to finish
an interrupted grid. Prints one JSON document: the budget, per-trial results
and the per-class summary.

Usage: python benchmarks/ganomaly_mnist.py --epochs 3 --seeds 0 1 2 --out results/ganomaly_mnist
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from ganad import run
from ganad.config import RunConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--classes", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", type=Path, default=Path("results/ganomaly_mnist"))
    args = ap.parse_args()
    trials = []
    t0 = time.perf_counter()
    for seed in args.seeds:
        for cls in args.classes:
            cfg = RunConfig(
                model="ganomaly",
                dataset="mnist",
                protocol="one-class-normal",
                cls=cls,
                seed=seed,
                epochs=args.epochs,
                batch_size=64,
                image_size=args.image_size,
                data_dir=args.data_dir,
                select_on="val",
                maps=0,
            )
            folder = args.out / f"c{cls}-s{seed}"
            if (folder / run.METRICS).is_file():
                rec = run.read_metrics(folder)
            else:
                rec = run.train(cfg, folder, overwrite=True, progress=False)
            trials.append(
                {
                    "class": cls,
                    "seed": seed,
                    "auroc": rec["metrics"]["auroc"],
                    "auprc": rec["metrics"]["auprc"],
                    "train_seconds": rec["train_seconds"],
                    "selected_epoch": rec["selection"]["selected_epoch"],
                }
            )
            print(json.dumps(trials[-1]), flush=True)
    summary = {}
    for cls in args.classes:
        a = [t["auroc"] for t in trials if t["class"] == cls]
        summary[cls] = {
            "auroc_mean": statistics.mean(a),
            "auroc_std": statistics.stdev(a) if len(a) > 1 else 0.0,
            "n": len(a),
        }
    print(
        json.dumps(
            {
                "benchmark": "ganomaly_mnist_one_class_normal",
                "budget": {
                    "epochs": args.epochs,
                    "batch_size": 64,
                    "image_size": args.image_size,
                    "lr": 2e-4,
                    "beta1": 0.5,
                    "nz": 100,
                    "selection": "best validation AUROC (val carved from training side)",
                },
                "paper_setting": {"epochs": 15, "batch_size": 64, "image_size": 32},
                "wall_seconds": round(time.perf_counter() - t0, 1),
                "summary": summary,
                "trials": trials,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
