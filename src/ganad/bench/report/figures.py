"""The report's figures (bars, curves, histograms, losses) and the index that keeps figures drawn
while trial folders were present."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

from ganad.bench.report.doc import Page
from ganad.bench.report.sections import NoTrials, Section, Skip, is_baseline

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from ganad.atomic import atomic_write_bytes

_NOT_LOSSES = {"epoch", "step", "seconds"}
FIG_INDEX = "figures.json"
#: what each figure reads from a trial folder, for the note when those folders are absent
_NEEDS = {
    "curves": "scores.csv",
    "hist": "scores.csv",
    "losses": "log.jsonl",
    "images": "model.safetensors, model.json and the data set",
}
_CAPTIONS = {
    "bars": "{metric} per class and model: bar = mean over seeds, error bar = std, dots = each seed, "
    "dashed line = chance",
    "curves": "ROC and precision-recall curves on the test set (first seed of each model and class)",
    "hist": "test anomaly scores, normal vs anomalous (one class for every model, first seed; densities)",
    "losses": "training losses, mean per epoch (one class for every model, first seed)",
    "images": "lowest- and highest-scored test images (one class for every model, first seed): "
    "input, reconstruction x̂, heat map |x - x̂| (one colour scale per model, jet: blue low, red high)",
}
COLORS = plt.get_cmap("tab10").colors


# -- figures -----------------------------------------------------------------------------------
def _plot_images(root: Path, sec: Section, path: Path) -> list[dict[str, Any]]:
    from ganad.bench.report.images import plot_images  # late: it imports this module

    return plot_images(root, sec, path)


def figures(root: Path, sec: Section, figs: Path, index: dict[str, Any], images: bool) -> Page:
    """Draw the section's figures (or reuse ones drawn while its trial folders were here) and say
    which could not be drawn and why."""
    page = Page()
    needs_trials: list[str] = []
    plots: list[tuple[str, Callable[[Path, Section, Path], list[dict[str, Any]]]]] = [
        ("bars", _plot_bars),
        ("curves", _plot_curves),
        ("hist", _plot_hist),
        ("losses", _plot_losses),
        ("images", _plot_images),
    ]
    current = {r["trial"]: str(r.get("finished_at")) for r in sec.ok}
    for name, fn in plots:
        caption = _CAPTIONS[name].format(metric=sec.metrics[0])
        if name == "bars" and len(sec.classes()) == 1:
            caption = "every metric per model: mean over seeds, error bar = std over seeds (none with one seed)"
        if name == "images" and (not images or sec.dataset in ("kdd99", "csv")):
            continue
        path = figs / sec.figure(name)
        note = ""
        try:
            used = fn(root, sec, path)
            index[path.name] = {r["trial"]: str(r.get("finished_at")) for r in used}
        except Skip as e:
            old = index.get(path.name)
            reusable = (
                name in _NEEDS and path.is_file() and old and all(current.get(t) == when for t, when in old.items())
            )
            if not reusable:
                if isinstance(e, NoTrials):
                    needs_trials.append(f"{caption.split(':')[0].split(' (')[0]} (reads {_NEEDS[name]})")
                else:
                    page.note(f"{caption.split(' (')[0]}: not drawn ({e}).")
                continue
            note = " Drawn by an earlier run of the report, when the trial folders were present."
        except Exception as e:  # a figure must never cost the rest of the report
            page.note(f"({name} figure skipped: {type(e).__name__}: {e})")
            continue
        page.figure(path, caption, note)
    if needs_trials:
        page.quote(
            "Not drawn because the trial folders (trials/<id>/) are not in this results folder — only "
            "results.jsonl is, which is all the tables and the bar chart need: "
            + "; ".join(needs_trials)
            + ". Keep the trials/ folders next to results.jsonl to draw them."
        )
    return page


def drop_orphan_figures(figs: Path, index: dict[str, Any], sections: list[Section]) -> None:
    """Delete figures an earlier run of the report drew for sections that no longer exist.

    A renamed budget or grid changes a section's slug, and the old PNGs would lie in
    figures/ forever, unreferenced. Only files this report's index lists are touched, so a
    file a user put in the folder is never deleted.
    """
    live = {s.figure(kind) for s in sections for kind in _CAPTIONS}
    for name in [n for n in index if n not in live]:
        if Path(name).name == name and name.endswith(".png"):  # an edited index never reaches outside figures/
            (figs / name).unlink(missing_ok=True)
        del index[name]


def read_index(out: Path) -> dict[str, Any]:
    try:
        data = json.loads((out / FIG_INDEX).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def write_index(out: Path, index: dict[str, Any]) -> None:
    atomic_write_bytes(out / FIG_INDEX, (json.dumps(index, indent=1, sort_keys=True) + "\n").encode())


def color(sec: Section, label: str) -> tuple[float, float, float]:
    labels = sec.labels()
    return COLORS[labels.index(label) % len(COLORS)] if label in labels else (0.3, 0.3, 0.3)


def first_trials(root: Path, sec: Section, files: tuple[str, ...], per_class: bool = False) -> dict[tuple, dict]:
    """Per model label (and class), the trial with the lowest seed whose files are all here.

    Without ``per_class`` every model is shown on one class: the lowest class whose folders are here
    for the most models, so a figure never sets one model's class 1 beside another's class 0 (a
    model without a folder of that class falls back to its own lowest). A fixed, reproducible pick.
    Raises NoTrials when no trial has its folder, naming the files looked for.
    """
    present = [r for r in sec.ok if all((root / r["folder"] / f).is_file() for f in files)]
    if not present:
        raise NoTrials(f"no trial folder with {', '.join(files)}")
    order = sorted(present, key=lambda r: (r["seed"], str(r["cls"])))
    out: dict[tuple, dict[str, Any]] = {}
    if per_class:
        for r in order:
            out.setdefault((sec.label(r), r["cls"]), r)
        return out
    cover: dict[Any, set[str]] = defaultdict(set)
    for r in present:
        cover[r["cls"]].add(sec.label(r))
    common = min(cover, key=lambda c: (-len(cover[c]), str(c)))
    for r in sorted(order, key=lambda r: r["cls"] != common):  # the common class first, then the rest
        out.setdefault((sec.label(r),), r)
    return out


def read_scores(root: Path, rec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    with open(root / rec["folder"] / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return np.array([int(r["label"]) for r in rows]), np.array([float(r["score"]) for r in rows])


def grid_axes(n: int, ncols: int = 4, w: float = 2.75, h: float = 2.4) -> tuple[Any, list[Any]]:
    """n panels wrapped ncols to a row; unused panels hidden. Sized for a 1100 px wide page at 100 dpi."""
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    savefig(fig, path)


def savefig(fig: Any, path: Path) -> None:
    """A figure as PNG through a temporary file + rename (never through a link at ``path``)."""
    buf = io.BytesIO()
    fig.savefig(buf, dpi=100, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _plot_bars(root: Path, sec: Section, path: Path) -> list[dict[str, Any]]:
    """Per-class bars per model (the survey's Fig. 5); with a single class, one group of bars per metric."""
    if not sec.rows:
        raise Skip("no finished trial")
    labels = sec.labels()
    classes = sec.classes()
    cell = {(sec.label(r), r["class"]): r for r in sec.rows}
    metric = sec.metrics[0]
    if len(classes) == 1:
        groups = sec.metrics
        get = [[(cell.get((m, classes[0])) or {}).get(f"{g}_mean") for g in groups] for m in labels]
        err = [[(cell.get((m, classes[0])) or {}).get(f"{g}_std") for g in groups] for m in labels]
        names = groups
        xlabel = "metric"
        ylabel = "value (mean over seeds)"
    else:
        groups = classes
        get = [[(cell.get((m, c)) or {}).get(f"{metric}_mean") for c in classes] for m in labels]
        err = [[(cell.get((m, c)) or {}).get(f"{metric}_std") for c in classes] for m in labels]
        names = ["—" if c is None else str(c) for c in classes]
        xlabel = "anomalous class" if "anomalous" in sec.protocol else "class"
        ylabel = f"{metric} (mean over seeds)"
    width = min(11.0, max(6.0, 0.32 * len(groups) * len(labels) + 2.5))
    fig, ax = plt.subplots(figsize=(width, 3.6))
    w = 0.8 / max(1, len(labels))
    x = np.arange(len(groups))
    for i, lab in enumerate(labels):
        ys = [np.nan if v is None else v for v in get[i]]
        es = None if all(v is None for v in err[i]) else [0 if v is None else v for v in err[i]]  # 1 seed: no bar
        xs = x + i * w - 0.4 + w / 2
        ax.bar(xs, ys, w, yerr=es, label=lab, capsize=2, color=color(sec, lab))
        for xi, g in zip(xs, groups, strict=True):  # each seed as a dot: a mean of three says little alone
            if len(classes) == 1:
                seeds = [(r.get("metrics") or {}).get(g) for r in sec.ok if sec.label(r) == lab]
            else:
                seeds = [(r.get("metrics") or {}).get(metric) for r in sec.ok if sec.label(r) == lab and r["cls"] == g]
            seeds = [v for v in seeds if v is not None]
            if len(seeds) > 1:
                ax.plot([xi] * len(seeds), seeds, "o", ms=2, color="k", alpha=0.6, zorder=3)
    for xi, g in zip(x, groups, strict=True):  # what a random score gets, per group
        level = sec.chance(classes[0]).get(g) if len(classes) == 1 else sec.chance(g).get(metric)
        if level is not None:
            ax.hlines(level, xi - 0.45, xi + 0.45, colors="k", linestyles="--", lw=0.8, zorder=4)
    ax.set_xticks(x, names)
    ax.set(xlabel=xlabel, ylabel=ylabel, ylim=(0, 1.05))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    _save(fig, path)
    return list(sec.ok)


def _plot_curves(root: Path, sec: Section, path: Path) -> list[dict[str, Any]]:
    """One class: ROC and PR panels with a line per model. Several: a panel per model, a line per class."""
    firsts = first_trials(root, sec, ("scores.csv",), per_class=True)
    labels = [lab for lab in sec.labels() if any(k[0] == lab for k in firsts)]
    if len(sec.classes()) == 1:
        fig, (roc, pr) = plt.subplots(1, 2, figsize=(9.5, 3.4 + 0.16 * len(labels)))
        base = None
        for lab in labels:
            rec = next(r for k, r in firsts.items() if k[0] == lab)
            y, s = read_scores(root, rec)
            if y.min() == y.max():
                continue
            fpr, tpr, _ = roc_curve(y, s)
            p, r = _pr(y, s)
            c = color(sec, lab)
            roc.plot(fpr, tpr, lw=1.2, color=c, label=f"{lab} ({roc_auc_score(y, s):.3f})")
            pr.plot(r, p, lw=1.2, color=c, label=f"{lab} ({average_precision_score(y, s):.3f})")
            base = y.mean()
        roc.plot([0, 1], [0, 1], "k:", lw=0.7)
        roc.set(title="ROC (legend: AUROC)", xlabel="false positive rate", ylabel="true positive rate")
        pr.set(title="precision-recall (legend: AUPRC)", xlabel="recall", ylabel="precision", ylim=(0, 1.02))
        if base is not None:
            pr.axhline(base, color="k", ls=":", lw=0.7)
            pr.set_ylim(_pr_floor(base), 1.02)
        for ax in (roc, pr):  # below the panel: inside, it hides the curves' corners
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
        _save(fig, path)
        return list(firsts.values())
    n = len(labels)
    fig, axes = grid_axes(2 * n, ncols=min(4, n), h=2.6)
    for j, lab in enumerate(labels):
        roc, pr = axes[j], axes[n + j]
        for k, rec in sorted(firsts.items(), key=lambda kv: str(kv[0][1])):
            if k[0] != lab:
                continue
            y, s = read_scores(root, rec)
            if y.min() == y.max():
                continue
            fpr, tpr, _ = roc_curve(y, s)
            p, r = _pr(y, s)
            roc.plot(fpr, tpr, lw=1, label=f"{k[1]} ({roc_auc_score(y, s):.2f})")
            pr.plot(r, p, lw=1, label=f"{k[1]} ({average_precision_score(y, s):.2f})")
        roc.plot([0, 1], [0, 1], "k:", lw=0.7)
        roc.set_title(wrap(f"{lab}: ROC"), fontsize=9)
        roc.set(xlabel="false positive rate", ylabel="true positive rate")
        pr.set_title(wrap(f"{lab}: PR"), fontsize=9)
        bases = [read_scores(root, rec)[0].mean() for k, rec in firsts.items() if k[0] == lab]
        pr.set(xlabel="recall", ylabel="precision", ylim=(_pr_floor(min(bases, default=0.0)), 1.02))
        for ax in (roc, pr):
            ax.legend(fontsize=6, title="class (AUC)", title_fontsize=6, ncol=2 if len(sec.classes()) > 5 else 1)
    _save(fig, path)
    return list(firsts.values())


def _pr_floor(chance: float) -> float:
    """The PR panel's lower limit: just under chance precision, so curves at a chance of 0.9 are not
    squashed into the top tenth of a 0-1 axis."""
    return max(0.0, round(float(chance) - 0.1, 1))


def _pr(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall without scikit-learn's appended (recall 0, precision 1) point.

    That point is a convention, not a threshold anyone can pick; drawn, it is a
    vertical spike at recall 0 that reads as a perfect detector.
    """
    p, r, _ = precision_recall_curve(y, s)
    return p[:-1], r[:-1]


def _plot_hist(root: Path, sec: Section, path: Path) -> list[dict[str, Any]]:
    firsts = first_trials(root, sec, ("scores.csv",))
    labels = [lab for lab in sec.labels() if (lab,) in firsts]
    fig, axes = grid_axes(len(labels))
    for ax, lab in zip(axes, labels, strict=True):
        rec = firsts[(lab,)]
        y, s = read_scores(root, rec)
        lo, hi = np.percentile(s, [0.5, 99.5])
        if hi <= lo:
            lo, hi = s.min(), s.max() + 1e-9
        bins = np.linspace(lo, hi, 41)
        clipped = np.clip(s, lo, hi)
        ax.hist(clipped[y == 0], bins=bins, alpha=0.6, density=True, label="normal", color="tab:blue")
        ax.hist(clipped[y == 1], bins=bins, alpha=0.6, density=True, label="anomalous", color="tab:red")
        cls = "" if rec["cls"] is None else f", class {rec['cls']}"
        ax.set_title(wrap(f"{lab}{cls}, seed {rec['seed']}"), fontsize=9)
        ax.set(xlabel="anomaly score (0.5–99.5 pct.)", ylabel="density")
        ax.legend(fontsize=7)
    _save(fig, path)
    return list(firsts.values())


def _plot_losses(root: Path, sec: Section, path: Path) -> list[dict[str, Any]]:
    firsts = first_trials(root, sec, ("log.jsonl",))
    # the baselines fit in one pass: their log holds fit sizes, not losses to plot
    labels = [lab for lab in sec.labels() if (lab,) in firsts and not is_baseline(firsts[(lab,)]["model"])]
    if not labels:
        raise Skip("only one-pass baselines, which have no training losses")
    fig, axes = grid_axes(len(labels), ncols=3, w=3.6, h=3.1)
    epochs = 0
    for ax, lab in zip(axes, labels, strict=True):
        rec = firsts[(lab,)]
        log = root / rec["folder"] / "log.jsonl"
        entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        keys = sorted({k for e in entries for k in e if k not in _NOT_LOSSES and not k.startswith("val_")})
        keys = [k for k in keys if any(e.get(k) not in (None, 0, 0.0) for e in entries)]  # all-zero: no loss
        vals = np.array([e.get(k, np.nan) for e in entries for k in keys], dtype=float)
        vals = vals[np.isfinite(vals)]
        for k in keys:
            ax.plot([e["epoch"] for e in entries], [e.get(k, np.nan) for e in entries], marker="o", ms=3, lw=1, label=k)
        # log scale only when the terms are positive and span decades (GANomaly's 50x contextual loss);
        # symlog over a narrow range labels its two ticks 6.08032e-1 and 1.27864e0
        log_y = len(vals) and vals.min() > 0 and vals.max() / vals.min() > 20
        ax.set(xlabel="epoch", ylabel="loss" + (" (log scale)" if log_y else ""), yscale="log" if log_y else "linear")
        ax.set_title(wrap(lab), fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no 1.5 on a 2-epoch plot
        if len(entries) == 1:
            ax.set_xticks([entries[0]["epoch"]])
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=4, frameon=False)
        epochs = max(epochs, len(entries))
    if epochs == 1:  # say so, or a reader looks for lines that are not there
        fig.suptitle("one epoch at this budget: one point per loss", fontsize=9)
    _save(fig, path)
    return list(firsts.values())


def wrap(title: str, width: int = 32) -> str:
    """Panel titles wrapped so a long model label (with its hyper-parameters) stays inside its panel."""
    import textwrap

    return "\n".join(textwrap.wrap(title, width)) or title
