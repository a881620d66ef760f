"""A small synthetic category in the MVTec AD layout, to try the MVTec path without the 4.9 GB archive.

Used by the tests (no test may need the real archive) and by ``benchmarks/mvtec_synthetic.py``
(the measured table of the README's "From anomalib" section). Each image is a woven texture
(a product of sines) plus Gaussian noise; ``test/scratch`` adds a horizontal line and
``test/hole`` a square, each with its ``ground_truth/<defect>/<id>_mask.png``.

``contrast`` scales how far a defect's pixels move from the texture (1: the line is white and the
square black, which every detector finds; 0.2: a faint line and a shallow dent), and ``shift``
moves the weave by up to that many pixels per image, so normal images differ by more than noise
and a detector must learn the texture rather than one picture of it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

#: the defect types the synthetic categories hold (folder names under ``test/``)
DEFECTS = ("scratch", "hole")


def write_mvtec_like(
    root: str | Path,
    category: str = "widget",
    *,
    n_train: int = 60,
    n_test: int = 8,
    size: int = 32,
    mode: str = "L",
    contrast: float = 1.0,
    shift: int = 0,
    seed: int = 0,
) -> Path:
    """Write ``root/category`` in the MVTec AD layout; returns ``root``.

    ``n_test`` good test images and ``n_test`` of each defect; ``mode`` "L" (grey) or "RGB".
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    root = Path(root)

    def texture() -> np.ndarray:
        dy, dx = rng.integers(0, shift + 1, size=2) if shift else (0, 0)
        weave = 128 + 50 * np.sin((xx + dx) / 2.0) * np.cos((yy + dy) / 3.0)
        return np.clip(weave + rng.normal(0, 6, weave.shape), 0, 255)

    def save(arr: np.ndarray, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).convert(mode).save(path)

    base = root / category
    for i in range(n_train):
        save(texture(), base / "train" / "good" / f"{i:03d}.png")
    lo, hi = 4, size - 8
    for i in range(n_test):
        save(texture(), base / "test" / "good" / f"{i:03d}.png")
        for defect in DEFECTS:
            img, mask = texture(), np.zeros((size, size))
            r, c = rng.integers(lo, hi, size=2)
            if defect == "scratch":  # towards white
                cols = slice(c - 4, c + 5)
                img[r, cols] += contrast * (255 - img[r, cols])
                mask[r, cols] = 255
            else:  # towards black
                img[r : r + 5, c : c + 5] -= contrast * img[r : r + 5, c : c + 5]
                mask[r : r + 5, c : c + 5] = 255
            save(img, base / "test" / defect / f"{i:03d}.png")
            save(mask, base / "ground_truth" / defect / f"{i:03d}_mask.png")
    return root
