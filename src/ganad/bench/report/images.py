"""The image grid of the report: the one part that reloads saved models and their test data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

from ganad.bench.report.figures import first_trials, read_scores, savefig
from ganad.bench.report.sections import Section, Skip

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def _require_data(dataset: str) -> None:
    """Raise Skip, in one line, when a downloadable data set's files are not on this machine.

    The image grid rebuilds the test split; a report must not start a download (or wait on a
    network that is not there) and must not paste the downloader's long error into the page.
    """
    from ganad.data.download import REGISTRY, dataset_status

    if dataset not in REGISTRY:
        return  # built-in, or a user's own folder / CSV: its loader names what is missing
    row = next(r for r in dataset_status() if r["name"] == dataset)
    if row["status"] != "present":
        raise Skip(
            f"the {dataset} files are not on this machine; pass --data-dir or set GANAD_DATA_DIR "
            f"(or run 'ganad datasets download {dataset}') to draw it"
        )


def plot_images(root: Path, sec: Section, path: Path, k: int = 4) -> list[dict[str, Any]]:
    """Reload each model (first trial) and its test split; show the k lowest and k highest scores."""

    from ganad import load, run
    from ganad.config import from_dict
    from ganad.plots import to_display

    firsts = first_trials(root, sec, ("model.safetensors", "model.json", "scores.csv"))
    labels = [lab for lab in sec.labels() if (lab,) in firsts]
    _require_data(sec.dataset)
    panels = []
    for lab in labels:
        rec = firsts[(lab,)]
        det = load(root / rec["folder"], device="cpu")
        if det.preprocessor_.kind != "image":
            raise Skip("not image data")
        cfg = from_dict(rec["config"], source=rec["trial"])
        split = run.prepare_split(cfg)
        y, s = read_scores(root, rec)
        if len(y) != len(split.test.y) or not np.array_equal(y, np.asarray(split.test.y)):
            raise Skip(f"{rec['trial']}: the test split rebuilt here does not match its scores.csv")
        order = np.argsort(s, kind="stable")
        pick = np.concatenate([order[:k], order[-k:]])
        raw = split.test.x[pick]
        x = det.transform_input(raw)
        recon, maps = det.reconstructions_of(x), det.anomaly_map(raw)  # maps at the images' own resolution
        panels.append((lab, x, recon, maps, s[pick], y[pick], rec))
    n = 2 * k
    cols = 1 if len(panels) == 1 else 2  # two models side by side: the page is wide, 32 px images are small
    rows = -(-len(panels) // cols)
    cell = 0.62
    fig = plt.figure(figsize=(cols * (n * cell + 0.5), rows * (3 * cell + 0.75) + 0.35), layout="constrained")
    subs = np.atleast_1d(fig.subfigures(rows, cols, wspace=0.04, hspace=0.04)).ravel()
    for sub in subs[len(panels) :]:
        sub.set_visible(False)
    for sub, (lab, x, recon, maps, sc, yy, rec) in zip(subs, panels, strict=False):
        axes = sub.subplots(3, n, squeeze=False, gridspec_kw={"wspace": 0.05, "hspace": 0.05})
        vmax = float(np.percentile(maps, 99.5)) if maps is not None else 1.0
        for i in range(n):
            a0, a1, a2 = axes[0, i], axes[1, i], axes[2, i]
            d = to_display(x[i])
            a0.imshow(d, cmap="gray" if d.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            kind = "anomaly" if yy[i] else "normal"
            a0.set_title(f"{sc[i]:.3g}\n{kind}", fontsize=6, color="tab:red" if yy[i] else "black", pad=2)
            if recon is not None:
                r = to_display(recon[i])
                a1.imshow(r, cmap="gray" if r.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            if maps is not None:
                a2.imshow(maps[i], cmap="jet", vmin=0, vmax=vmax or 1.0, interpolation="nearest")
            for a in (a0, a1, a2):
                a.set_xticks([])
                a.set_yticks([])
        axes[0, 0].set_ylabel("input", fontsize=7)
        axes[1, 0].set_ylabel("x̂" if recon is not None else "x̂ (none)", fontsize=7)
        axes[2, 0].set_ylabel("|x - x̂|" if maps is not None else "(no map)", fontsize=7)
        cls = "" if rec["cls"] is None else f", class {rec['cls']}"
        sub.suptitle(f"{lab}{cls}, seed {rec['seed']}", fontsize=9)
    fig.suptitle(
        f"each block: left {k} = lowest scores (most normal-looking), right {k} = highest; "
        "above each input its score and true label (anomalies in red)",
        fontsize=8,
    )
    savefig(fig, path)
    return [p[-1] for p in panels]
