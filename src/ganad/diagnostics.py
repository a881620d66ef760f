"""Collapse diagnostics: does a trained detector detect, or does its score reduce to a trivial statistic?

A GAN detector can train, log falling losses and fill a table while it has
learnt nothing: a generator that produces one kind of sample (mode collapse),
an autoencoder whose x̂ is the same picture for every input, a score that
ranks samples by their L1 norm. AUROC alone cannot tell these apart from
detection (a collapsed model on KDD Cup 99 still gets AUROC 0.72), so every
run measures three things on a seeded subsample, cheaply, and says in plain
words when one of them looks like collapse:

* **reconstruction spread**: per-feature std of x̂ over test samples divided
  by that of x (median over features with any spread, and the ratio of the
  total std). Near 0: x̂ hardly depends on x, the "reconstruction error" is a
  distance to one fixed point.
* **mode coverage**: the share of training modes that are the nearest mode of
  some generated sample (warned about below :data:`MIN_COVERAGE`, or when a
  mode of at least :data:`MAJOR_MODE_SHARE` of the training data is missing).
  Modes are the training split's source classes (KDD attack types, digits)
  where it holds two or more, each with at least
  :data:`MIN_MODE_SHARE` of the training rows (rarer classes are too small
  to expect from a sample of :data:`MAX_SAMPLES`); otherwise
  :data:`KMEANS_K` k-means clusters of the training data (seeded). Generated
  samples come from ``model.sample`` when the model has a prior to sample,
  else they are reconstructions of training samples. A mode counts as
  covered when it gets at least :data:`MIN_MODE_HITS` of the generated
  samples its training share predicts.
* **rank correlation** (Spearman) of the test score with ‖x‖₁, with
  ‖x − median of training‖₁ and, for images, with the mean intensity
  ("ink"), all in the space the model sees (scaled rows, images in [-1, 1]).

Everything runs in the model's input space on at most :data:`MAX_SAMPLES`
training and test samples; reconstructions stop after about
:data:`RECONSTRUCT_SECONDS` per pass, so a latent-search model (AnoGAN) is
diagnosed on fewer samples instead of paying for a second full scoring.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from ganad import engine
from ganad.models.base import Model

#: |Spearman ρ| of the score with a trivial statistic above which the score "is" that statistic
TRIVIAL_RHO = 0.9
#: reconstruction spread ratio below which x̂ hardly depends on x
MIN_SPREAD = 0.1
#: mode coverage below which the generator misses most of the training data
MIN_COVERAGE = 0.5
#: training and test samples the diagnostics look at (seeded subsample): keeps them to seconds
MAX_SAMPLES = 2000
#: k-means clusters standing in for modes when the training split has no class labels
KMEANS_K = 10
#: a labelled class is a mode only if it holds at least this share of the training samples: rarer ones
#: (KDD's back, satan, ... at 0.2-0.6 %) are a handful of rows in the subsample, and even a detector
#: that works (GANomaly, AUROC 0.99 on KDD) reconstructs them nearest to the big classes
MIN_MODE_SHARE = 0.01
#: a missing mode this large (share of the training samples) is warned about whatever the coverage:
#: a generator that makes only smurf covers 1 of KDD's 2 modes (0.5) yet never makes neptune's 27 %
MAJOR_MODE_SHARE = 0.1
#: a mode counts as covered when it is the nearest mode of at least this fraction of the generated samples
#: its training share predicts (and of at least one): stray nearest-neighbour matches of a collapsed
#: generator's samples do not count as covering a mode
MIN_MODE_HITS = 0.1
#: time after which a reconstruction pass stops taking more samples (checked between chunks)
RECONSTRUCT_SECONDS = 2.0
#: samples per reconstruction chunk
CHUNK = 128
#: reconstructions taken however slow the model is (fewer would make the spread ratio noise)
MIN_RECONSTRUCT = 16

#: the trivial statistics: key -> (symbol in a warning, what ranking by it means)
STATISTICS: dict[str, tuple[str, str]] = {
    "l1": ("‖x‖₁", "their L1 norm"),
    "l1_median": ("‖x − median‖₁", "their L1 distance to the median training sample"),
    "ink": ("mean intensity (ink)", "how much ink they hold"),
}
#: each measurement as one number of a trial, for tables (``ganad results --metric rho:ink``): name ->
#: (group, key) in a record's ``diagnostics``
METRICS: dict[str, tuple[str, str]] = {
    **{f"rho:{k}": ("correlation", k) for k in STATISTICS},
    "spread": ("spread", "ratio"),
    "coverage": ("coverage", "share"),
}


# -- the three measurements ----------------------------------------------------------------------
def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's ρ, or None when either side is constant (no ranking to compare)."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    rho = float(spearmanr(a, b).statistic)
    return None if np.isnan(rho) else rho


def trivial_statistics(x: np.ndarray, median: np.ndarray, image: bool) -> dict[str, np.ndarray]:
    """Per-sample statistics any score could be by accident: ‖x‖₁, ‖x − median‖₁ and (images) ink."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    out = {"l1": np.abs(flat).sum(1), "l1_median": np.abs(flat - median.reshape(1, -1)).sum(1)}
    if image:
        out["ink"] = flat.mean(1)
    return out


def correlations(x: np.ndarray, scores: np.ndarray, median: np.ndarray, image: bool) -> dict[str, float | None]:
    """Spearman ρ of the scores with each trivial statistic of ``x``."""
    return {k: spearman(scores, v) for k, v in trivial_statistics(x, median, image).items()}


def spread(x: np.ndarray, x_hat: np.ndarray) -> dict[str, Any]:
    """How much reconstructions vary compared with their inputs (1 = as much, 0 = a constant x̂).

    ``ratio`` is the median over features with any spread in ``x`` of
    std(x̂) / std(x), so a few large columns (raw KDD byte counts) do not
    decide it; ``total_ratio`` compares the total std (square root of the
    summed variances).
    """
    fx = x.reshape(len(x), -1).astype(np.float64)
    fh = x_hat.reshape(len(x_hat), -1).astype(np.float64)
    sx, sh = fx.std(0), fh.std(0)
    keep = sx > 0
    if not keep.any():
        return {"ratio": None, "total_ratio": None, "n": len(x)}
    return {
        "ratio": float(np.median(sh[keep] / sx[keep])),
        "total_ratio": float(np.sqrt((sh**2).sum() / (sx**2).sum())),
        "n": len(x),
    }


def training_modes(
    train_x: np.ndarray, classes: np.ndarray | None, class_names: list[str] | None, seed: int
) -> tuple[Callable[[np.ndarray], np.ndarray], list[str], np.ndarray, str]:
    """(assign samples to modes, mode names, training share of each mode, "labels" or "k-means").

    Labelled classes are used when at least two hold :data:`MIN_MODE_SHARE`
    of the samples; a generated sample's mode is then the class of its
    nearest training sample (a class may have several clusters). Otherwise
    the modes are k-means clusters and a sample's mode is its nearest centre.
    """
    flat = train_x.reshape(len(train_x), -1).astype(np.float32)
    if classes is not None:
        ids, counts = np.unique(classes, return_counts=True)
        big = counts >= MIN_MODE_SHARE * len(classes)
        order = np.argsort(-counts[big], kind="stable")  # most common first
        kept, shares = ids[big][order], counts[big][order] / len(classes)
        if len(kept) >= 2:
            ref = np.isin(classes, kept)
            rank = {int(c): i for i, c in enumerate(kept)}
            ref_x, ref_c = flat[ref], np.array([rank[int(c)] for c in classes[ref]])
            names = [class_names[int(i)] if class_names and int(i) < len(class_names) else str(i) for i in kept]

            def nearest_class(g: np.ndarray) -> np.ndarray:
                from sklearn.metrics import pairwise_distances_argmin

                return ref_c[pairwise_distances_argmin(g.reshape(len(g), -1).astype(np.float32), ref_x)]

            return nearest_class, names, shares, "labels"
    from sklearn.cluster import KMeans

    k = min(KMEANS_K, len(np.unique(flat, axis=0)))
    km = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(flat)
    return (
        lambda g: km.predict(g.reshape(len(g), -1).astype(np.float32)),
        [f"cluster {i}" for i in range(k)],
        np.bincount(km.labels_, minlength=k) / len(flat),
        "k-means",
    )


def coverage(
    generated: np.ndarray, assign: Callable[[np.ndarray], np.ndarray], names: list[str], shares: np.ndarray
) -> dict[str, Any]:
    """The share of modes covered by the generated samples (see :data:`MIN_MODE_HITS`), and the missing ones."""
    counts = np.bincount(assign(generated), minlength=len(names)) if len(generated) else np.zeros(len(names), int)
    hit = counts >= np.maximum(1, MIN_MODE_HITS * shares * len(generated))
    return {
        "share": float(hit.mean()),
        "covered": int(hit.sum()),
        "modes": len(names),
        "missing": [n for n, h in zip(names, hit, strict=True) if not h],
        "missing_shares": [float(f) for f, h in zip(shares, hit, strict=True) if not h],
        "n": len(generated),
    }


# -- on a trained model ---------------------------------------------------------------------------
def _reconstruct(model: Model, x: np.ndarray, seconds_per_sample: float | None) -> np.ndarray | None:
    """x̂ for the first samples of ``x``: as many as fit in about :data:`RECONSTRUCT_SECONDS`.

    The count comes from the measured scoring time per sample (a reconstruction
    costs about what a score costs: AnoGAN's both run the latent search), and
    chunks stop once the time is spent, so a slow model is diagnosed on at
    least :data:`MIN_RECONSTRUCT` samples instead of paying for a second scoring.
    """
    if type(model).reconstruct is Model.reconstruct:
        return None
    n = len(x)
    if seconds_per_sample:
        n = min(n, max(MIN_RECONSTRUCT, int(RECONSTRUCT_SECONDS / seconds_per_sample)))
    chunk = min(CHUNK, n)
    out: list[np.ndarray] = []
    t0 = time.perf_counter()
    for i in range(0, n, chunk):
        r = engine.score(model, x[i : min(i + chunk, n)], chunk, fn=model.reconstruct, description="diagnostics")
        out.append(r.reshape(len(r), *x.shape[1:]))
        if time.perf_counter() - t0 > RECONSTRUCT_SECONDS:
            break
    return np.concatenate(out) if out else None


def _sample(model: Model, n: int, seed: int) -> np.ndarray | None:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            g = model.sample(n, seed)
    finally:
        model.train(was_training)
    return None if g is None else g.detach().float().cpu().numpy()


def subsample(n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of at most :data:`MAX_SAMPLES` of ``n`` samples."""
    return np.arange(n) if n <= MAX_SAMPLES else np.sort(rng.choice(n, MAX_SAMPLES, replace=False))


def diagnose(
    model: Model,
    train_x: np.ndarray,
    test_x: np.ndarray,
    scores: np.ndarray,
    *,
    train_classes: np.ndarray | None = None,
    class_names: list[str] | None = None,
    seed: int = 0,
    seconds_per_sample: float | None = None,
) -> dict[str, Any]:
    """All diagnostics of ``model``; inputs are in the model's space, ``scores`` belong to ``test_x``.

    ``train_x`` may be the whole training split: it is subsampled here (seeded).
    ``seconds_per_sample``, the measured scoring time, sizes the reconstruction
    passes of slow models (see :func:`_reconstruct`).
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    tr = subsample(len(train_x), rng)
    te = subsample(len(test_x), rng)
    train_s, test_s = train_x[tr], test_x[te]
    median = np.median(train_s.reshape(len(train_s), -1), axis=0)
    image = model.spec.kind == "image"
    out: dict[str, Any] = {
        "n_train": len(tr),
        "n_test": len(te),
        "seed": seed,
        "correlation": correlations(test_s, scores[te], median, image),
    }
    x_hat = _reconstruct(model, test_s, seconds_per_sample)
    out["spread"] = None if x_hat is None else spread(test_s[: len(x_hat)], x_hat)
    generated = _sample(model, len(tr), seed)
    how = "sample"
    if generated is None:
        generated, how = _reconstruct(model, train_s, seconds_per_sample), "reconstruction"
    if generated is None:
        out["coverage"] = None
    else:
        assign, names, shares, source = training_modes(
            train_s, None if train_classes is None else train_classes[tr], class_names, seed
        )
        out["coverage"] = {**coverage(generated, assign, names, shares), "mode_source": source, "generated_by": how}
    out["seconds"] = time.perf_counter() - t0
    return out


# -- what they mean ------------------------------------------------------------------------------
def flags(diag: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(kind, plain-words warning) for every measurement past its threshold; kinds name the statistic."""
    if not diag:
        return []
    if diag.get("error"):
        return [("error", f"diagnostics failed ({diag['error']}): collapse could not be checked for this run")]
    out: list[tuple[str, str]] = []
    for key, rho in (diag.get("correlation") or {}).items():
        if rho is not None and abs(rho) > TRIVIAL_RHO:
            symbol, meaning = STATISTICS.get(key, (key, key))
            sign = "" if rho > 0 else "the negative of "
            out.append(
                (
                    f"trivial:{key}",
                    f"score is a trivial statistic: Spearman ρ = {rho:.2f} with {symbol}; the detector ranks "
                    f"samples by {sign}{meaning}, not by what it learned",
                )
            )
    sp = diag.get("spread") or {}
    if sp.get("ratio") is not None and sp["ratio"] < MIN_SPREAD:
        out.append(
            (
                "spread",
                f"reconstructions collapsed: x̂ varies {sp['ratio']:.2f} times as much as x (median per-feature "
                "std ratio); the model returns nearly the same x̂ for every input, so a score built on x − x̂ "
                "is a distance to one fixed point",
            )
        )
    cov = diag.get("coverage") or {}
    missing = list(zip(cov.get("missing") or [], cov.get("missing_shares") or [], strict=False))
    major = [(n, f) for n, f in missing if f >= MAJOR_MODE_SHARE]
    if cov.get("share") is not None and (cov["share"] < MIN_COVERAGE or major):
        shown = ", ".join(f"{n} ({100 * f:.0f} % of training)" for n, f in missing[:5])
        shown += f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        what = "training classes" if cov.get("mode_source") == "labels" else "k-means clusters of the training data"
        by = "generated samples" if cov.get("generated_by") == "sample" else "reconstructions of training samples"
        out.append(
            (
                "coverage",
                f"mode collapse: {by} reach {cov['covered']} of {cov['modes']} {what} "
                f"(missing: {shown}); normal data of the missing modes looks anomalous to the model",
            )
        )
    return out


def summary(diag: dict[str, Any] | None) -> str:
    """The diagnostics on one line, for the CLI's run summary."""
    if not diag:
        return "not computed"
    if diag.get("error"):
        return f"failed ({diag['error']})"
    parts = []
    sp = diag.get("spread")
    parts.append("no reconstruction" if not sp else f"spread ratio {fmt(sp.get('ratio'))} (n={sp['n']})")
    cov = diag.get("coverage")
    if cov:
        what = "classes" if cov.get("mode_source") == "labels" else "k-means clusters"
        parts.append(f"mode coverage {cov['covered']}/{cov['modes']} {what} (by {cov.get('generated_by')})")
    rhos = ", ".join(f"{STATISTICS.get(k, (k,))[0]} {fmt(v)}" for k, v in (diag.get("correlation") or {}).items())
    parts.append(f"Spearman ρ of the score with {rhos}")
    return "; ".join(parts) + f" [{diag.get('seconds', 0):.1f}s]"


def fmt(v: float | None) -> str:
    """A diagnostic value to two decimals, '–' when undefined."""
    return "–" if v is None else f"{v:.2f}"


def warnings(diag: dict[str, Any] | None) -> list[str]:
    """The plain-words warning lines of :func:`flags`."""
    return [text for _, text in flags(diag)]
