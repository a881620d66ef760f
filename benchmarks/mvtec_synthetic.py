"""GANomaly and the baselines on a synthetic category in the MVTec AD layout: the README's "From anomalib" table.

The category comes from :func:`ganad.data.synthetic.write_mvtec_like` with faint defects
(``--contrast``) on a texture that shifts from image to image (``--shift``), so the task is not
solved by every detector (at contrast 1, the test fixture's, all of them score 1.0). Each detector
trains with ``ganad.run.train`` exactly as ``ganad train --dataset mvtec`` does and prints one JSON
line: image AUROC, pixel AUROC, AUPRO (to 30 % FPR), each defect's AUROC, training images per
second and scoring milliseconds per image, with the machine they were measured on.

    python benchmarks/mvtec_synthetic.py --out docs/results/mvtec_synthetic.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from _common import machine

from ganad.config import RunConfig
from ganad.data.synthetic import write_mvtec_like
from ganad.run import train


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="ganomaly,pca,knn,iforest,median-l1", help="comma-separated detectors")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (the data stays the same)")
    ap.add_argument("--contrast", type=float, default=0.1, help="how far defects move from the texture (0-1)")
    ap.add_argument("--shift", type=int, default=6, help="per-image shift of the weave, in pixels")
    ap.add_argument("--n-train", type=int, default=400, help="good training images")
    ap.add_argument("--n-test", type=int, default=40, help="good test images, and images of each defect")
    ap.add_argument("--size", type=int, default=32, help="image side in pixels")
    ap.add_argument("--epochs", type=int, default=25, help="GAN training epochs")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        root = write_mvtec_like(
            Path(tmp) / "mvtec",
            n_train=args.n_train,
            n_test=args.n_test,
            size=args.size,
            contrast=args.contrast,
            shift=args.shift,
        )
        for model in args.models.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                cfg = RunConfig(
                    model=model,
                    dataset="mvtec",
                    data_dir=str(root),
                    category="widget",
                    seed=seed,
                    epochs=args.epochs,
                    maps=0,
                )
                rec = train(cfg, Path(tmp) / f"{model}-{seed}", progress=False)
                m = rec["metrics"]
                n_images = rec["split"]["sizes"]["train"] * max(rec.get("epochs_run") or 1, 1)
                line = {
                    "model": model,
                    "seed": seed,
                    "image_auroc": m["auroc"],
                    "pixel_auroc": m.get("pixel_auroc"),
                    "aupro": m.get("aupro"),
                    "per_defect_auroc": rec.get("per_defect_auroc"),
                    "train_images_per_s": n_images / rec["train_seconds"] if rec.get("train_seconds") else None,
                    "score_ms_per_image": rec["score_ms_per_sample"],
                    "epochs": rec.get("epochs_run"),
                }
                print(json.dumps(line), flush=True)
                lines.append(line)
    doc = {"data": vars(args) | {"out": str(args.out)}, "machine": machine(), "runs": lines}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
