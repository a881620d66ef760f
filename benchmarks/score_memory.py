"""Peak memory of ``ganad score`` on image folders of growing size: it must stay bounded.

Trains a small GANomaly on scikit-learn's digits (offline), writes folders of
N PNG images (N from --sizes), and runs ``ganad score`` on each in a fresh
process, reading that process's peak resident set size (ru_maxrss). Scoring
reads and scores images in chunks of ``ganad.scoring.CHUNK``, so the peak
should not grow with N. Prints JSON.

Usage: python benchmarks/score_memory.py --sizes 1000 10000 40000 --image-size 64
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

MEASURE = """
import resource, sys
from ganad.cli import main
code = main(sys.argv[1:])
print("MAXRSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 40000])
    ap.add_argument("--image-size", type=int, default=64)
    args = ap.parse_args()
    import ganad
    from ganad.data import load_source

    src = load_source("digits")
    x = src.train.x[:, 0]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        det = ganad.GANomaly(epochs=1, image_size=args.image_size, verbose=False).fit(x[:256])
        det.save(tmp / "model")
        rng = np.random.default_rng(0)
        folder = tmp / "imgs"
        folder.mkdir()
        written = 0
        for n in sorted(args.sizes):
            while written < n:  # grow the same folder: each size includes the previous images
                img = Image.fromarray(x[rng.integers(len(x))]).resize((args.image_size, args.image_size))
                img.save(folder / f"{written:06d}.png")
                written += 1
            t0 = time.perf_counter()
            proc = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    MEASURE,
                    "score",
                    str(tmp / "model"),
                    str(folder),
                    "-q",
                    "--output",
                    str(tmp / f"s{n}.csv"),
                ],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                raise SystemExit(proc.stderr)
            kb = int(proc.stderr.split("MAXRSS_KB")[1].split()[0])
            raw_mb = n * args.image_size**2 * 4 / 2**20
            results.append(
                {
                    "images": n,
                    "peak_rss_mb": round(kb / 1024, 1),
                    "seconds": round(time.perf_counter() - t0, 1),
                    "whole_folder_as_float32_mb": round(raw_mb, 1),
                }
            )
            print(json.dumps(results[-1]), file=sys.stderr)
    print(json.dumps({"benchmark": "score_memory", "image_size": args.image_size, "results": results}, indent=2))


if __name__ == "__main__":
    main()
