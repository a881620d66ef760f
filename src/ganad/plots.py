"""Pictures a run writes: anomaly heat maps beside their inputs.

matplotlib with the Agg backend, so nothing needs a screen.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ganad.atomic import atomic_write_bytes


def to_display(img: np.ndarray) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> (H, W) or (H, W, 3) in [0, 1]."""
    img = (np.clip(img, -1, 1) + 1) / 2
    return img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)


def heatmap_grid(
    path: Path,
    images: np.ndarray,
    maps: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray | None = None,
    title: str = "",
) -> Path:
    """A 2-row grid: each input above its anomaly map |x - x_hat| overlaid in colour.

    Maps share one colour scale so columns are comparable; the caption gives
    the score (and the true label when known).
    """
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.4 * n + 0.6, 3.3), squeeze=False)
    vmax = float(np.percentile(maps, 99.5)) or 1.0
    for i in range(n):
        disp = to_display(images[i])
        axes[0, i].imshow(disp, cmap="gray" if disp.ndim == 2 else None, vmin=0, vmax=1)
        cap = f"{scores[i]:.3g}"
        if labels is not None:
            cap += "\nanomaly" if labels[i] else "\nnormal"
        axes[0, i].set_title(cap, fontsize=7)
        axes[1, i].imshow(disp if disp.ndim == 2 else disp.mean(axis=2), cmap="gray", vmin=0, vmax=1)
        axes[1, i].imshow(maps[i], cmap="jet", alpha=0.55, vmin=0, vmax=vmax)
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("input", fontsize=8)
    axes[1, 0].set_ylabel("|x - x̂|", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=110, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())  # a kill mid-write never leaves half a PNG under the name
    return path


def single_heatmap(path: Path, image: np.ndarray, amap: np.ndarray, score: float) -> Path:
    """One input beside its heat map overlaid on it, with the colour scale, for ``ganad score --maps``.

    ``image`` (C, H, W) in [-1, 1] and ``amap`` (H, W) at the same resolution (the input file's).
    """
    disp = to_display(image)
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.0))
    axes[0].imshow(disp, cmap="gray" if disp.ndim == 2 else None, vmin=0, vmax=1)
    axes[0].set_title(f"input, score {score:.4g}", fontsize=8)
    axes[1].imshow(disp if disp.ndim == 2 else disp.mean(axis=2), cmap="gray", vmin=0, vmax=1)
    overlay = axes[1].imshow(amap, cmap="jet", alpha=0.55, vmin=0, vmax=float(np.max(amap)) or 1.0)
    axes[1].set_title("anomaly map over the input", fontsize=8)
    fig.colorbar(overlay, ax=axes[1], fraction=0.046, pad=0.04)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=110, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path
