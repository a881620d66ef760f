"""Evaluation metrics: a thin layer over scikit-learn so numbers match everyone else's.

Labels are 1 = anomaly, scores are higher = more anomalous. Thresholded
metrics take an explicit threshold; the helpers below derive one from a
percentile of scores (EGBAD's rule), a contamination rate (PyOD's rule), or
the best F1 on labelled validation data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

from ganad.config import check_threshold_rule
from ganad.errors import TrainingError


def check_finite(s: np.ndarray, what: str = "scores") -> np.ndarray:
    """Refuse NaN/inf scores with a TrainingError instead of scikit-learn's bare ValueError.

    Inputs are checked to be finite when they are read, so non-finite scores
    mean the weights diverged (a step can blow them up while its loss is still
    finite); the run is then failed, not given NaN or meaningless metrics.
    """
    bad = ~np.isfinite(np.asarray(s, dtype=np.float64))
    if bad.any():
        raise TrainingError(
            f"{int(bad.sum())} of {bad.size} {what} are NaN or inf: the model's weights diverged "
            "(try a lower learning rate)"
        )
    return s


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    check_finite(s)
    return float(skm.roc_auc_score(y, s)) if len(np.unique(y)) == 2 else float("nan")


def auprc(y: np.ndarray, s: np.ndarray) -> float:
    """Area under the precision-recall curve (average precision), anomaly = positive class."""
    check_finite(s)
    return float(skm.average_precision_score(y, s)) if len(np.unique(y)) == 2 else float("nan")


def flag(s: np.ndarray, threshold: float) -> np.ndarray:
    """1 = anomaly where ``score >= threshold``, else 0: the one comparison every prediction uses.

    ``>=`` as EGBAD's code (``scores >= np.percentile(scores, 80)``): on raw KDD rows many scores
    tie, and ``metrics.json``, ``scores.csv``, ``predict`` and ``ganad score`` must flip none of them
    differently.
    """
    return (np.asarray(s) >= threshold).astype(int)


def prf_at(y: np.ndarray, s: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall and F1 of :func:`flag` (``score >= threshold``) as anomaly."""
    pred = flag(s, threshold)
    p, r, f, _ = skm.precision_recall_fscore_support(y, pred, average="binary", zero_division=0)
    return {"precision": float(p), "recall": float(r), "f1": float(f)}


def best_f1(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """(best F1 over all thresholds, the threshold that reaches it)."""
    check_finite(s)
    if len(np.unique(y)) < 2:
        return float("nan"), float("nan")
    p, r, t = skm.precision_recall_curve(y, s)
    f = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)[:-1]
    i = int(np.argmax(f))
    return float(f[i]), float(t[i])


def chance_levels(anomaly_ratio: float, flagged: float | None = None) -> dict[str, float]:
    """What a score that ranks samples at random gets, in expectation, on a test set with this anomaly share.

    Every table puts it beside the detectors, since an AUPRC of 0.35 reads as
    bad on one split and good on another: AUROC 0.5; precision (at any
    threshold) and AUPRC = the anomaly share a; best F1 = 2a / (1 + a), from
    flagging everything. F1 at a threshold that flags a share q of the test
    set (``flagged``: e.g. 0.2 for the 80th-percentile rule) = 2aq / (a + q),
    with recall q; None when the rule does not fix that share.
    """
    a = float(anomaly_ratio)
    out = {"auroc": 0.5, "auprc": a, "precision": a, "best_f1": 2 * a / (1 + a)}
    if flagged is not None:
        out.update(recall=flagged, f1=2 * a * flagged / max(a + flagged, 1e-12))
    return out


def chance_over_classes(shares: Mapping[Any, Sequence[float]], flagged: float | None = None) -> dict[str, float]:
    """The chance levels of a table spanning classes: the mean over classes of each class's
    :func:`chance_levels` (at that class's mean anomaly share), as a detector's "mean over classes" is
    the mean of its per-class numbers. Classes without a share are left out; {} if none has one."""
    levels = [chance_levels(float(np.mean(s)), flagged) for s in shares.values() if len(s)]
    keys = set.intersection(*(set(lv) for lv in levels)) if levels else set()
    return {k: float(np.mean([lv[k] for lv in levels])) for k in keys}


def flagged_share(rule: str | None) -> float | None:
    """The share of the evaluated scores a threshold rule flags, when the rule fixes it (``percentile:P``)."""
    kind, _, arg = (rule or "").partition(":")
    try:
        return 1 - float(arg) / 100 if kind == "percentile" else None
    except ValueError:
        return None


def threshold_from_rule(
    rule: str,
    *,
    scores: np.ndarray,
    val_scores: np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
    train_scores: np.ndarray | None = None,
) -> tuple[float, str]:
    """Resolve a threshold rule (:data:`ganad.config.THRESHOLD_RULES`) to a number and a human description.

    ``percentile:P`` thresholds the scores being evaluated, EGBAD's ``np.percentile(scores, 80)``;
    ``contamination:C`` the training scores (``scores`` when none are given); ``val-f1`` falls back
    to contamination 0.1 on training scores when validation has no anomalies.
    """
    for what, arr in (("scores", scores), ("validation scores", val_scores), ("training scores", train_scores)):
        if arr is not None:
            check_finite(arr, what)
    kind, val = check_threshold_rule(rule)
    if kind == "percentile":
        return float(np.percentile(scores, val)), f"{val:g}th percentile of the evaluated scores"
    if kind == "contamination":
        base = train_scores if train_scores is not None else scores
        return float(np.quantile(base, 1 - val)), f"contamination {val:g} of training scores"
    if val_scores is not None and val_labels is not None and len(np.unique(val_labels)) == 2:
        return best_f1(val_labels, val_scores)[1], "best F1 on validation"
    return threshold_from_rule("contamination:0.1", scores=scores, train_scores=train_scores)


def evaluate_scores(y: np.ndarray, s: np.ndarray, threshold: float | None = None) -> dict[str, float]:
    """All ranking metrics, plus thresholded ones when a threshold is given."""
    out = {
        "auroc": auroc(y, s),
        "auprc": auprc(y, s),
        "best_f1": best_f1(y, s)[0],
        "n": len(y),
        "anomaly_ratio": float(np.mean(y)),
    }
    if threshold is not None:
        out.update(prf_at(y, s, threshold), threshold=float(threshold))
    return out


# -- pixel-level metrics (images with ground-truth masks, the MVTec AD layout) ----------------------
#: the false-positive rate up to which AUPRO integrates (Bergmann et al., MVTec AD, IJCV 2021: 30 %)
PRO_FPR_LIMIT = 0.3


def per_group_auroc(y: np.ndarray, s: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Image AUROC per anomaly type: the normal samples against the anomalies of one group each.

    ``groups`` names each sample's defect type (ignored for normal samples), so a detector that finds
    scratches but not cracks shows it instead of averaging the two away.
    """
    y, s, groups = np.asarray(y), np.asarray(s), np.asarray(groups)
    normal = y == 0
    return {
        str(g): auroc(
            np.r_[np.zeros(normal.sum()), np.ones((y == 1)[groups == g].sum())],
            np.r_[s[normal], s[(y == 1) & (groups == g)]],
        )
        for g in sorted({str(v) for v in groups[y == 1]})
    }


def pixel_auroc(masks: np.ndarray, maps: np.ndarray) -> float:
    """AUROC over all pixels of all images: mask 1 = anomalous pixel, higher map value = more anomalous."""
    m = np.asarray(masks).astype(bool).ravel()
    return auroc(m.astype(int), np.asarray(maps, dtype=np.float64).ravel())


def pro_curve(masks: np.ndarray, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The per-region overlap curve of MVTec AD: (false-positive rates, PRO) over all thresholds.

    At a threshold t, FPR is the share of normal pixels (mask 0, all images) with a map value
    >= t, and PRO the mean, over every connected anomalous region of every image, of the share of
    that region's pixels >= t: a large defect does not outweigh a small one. Computed exactly from
    one sort: each normal pixel adds 1 / (normal pixels) to FPR, each pixel of region r adds
    1 / (|r| * regions) to PRO; ties are taken together (the curve's points are the distinct values).
    """
    from scipy import ndimage

    masks = np.asarray(masks).astype(bool)
    maps = np.asarray(maps, dtype=np.float64)
    if masks.shape != maps.shape:
        raise ValueError(f"masks {masks.shape} and maps {maps.shape} must have the same shape")
    weight = np.zeros(maps.shape, dtype=np.float64)
    regions: list[tuple[int, np.ndarray]] = []
    for i in range(len(masks)):
        labels, n = ndimage.label(masks[i])  # 4-connected regions, as scipy's default structure
        for r in range(1, n + 1):
            regions.append((i, labels == r))
    if not regions or masks.all():
        raise ValueError("PRO needs at least one anomalous region and one normal pixel")
    for i, region in regions:
        weight[i][region] = 1.0 / (region.sum() * len(regions))
    order = np.argsort(-maps.ravel(), kind="stable")
    values = maps.ravel()[order]
    normal = (~masks).ravel()[order]
    fpr = np.cumsum(normal) / normal.sum()
    pro = np.cumsum(weight.ravel()[order])
    last = np.r_[np.flatnonzero(np.diff(values) != 0), len(values) - 1]  # the end of each run of ties
    return np.r_[0.0, fpr[last]], np.r_[0.0, pro[last]]


def aupro(masks: np.ndarray, maps: np.ndarray, fpr_limit: float = PRO_FPR_LIMIT) -> float:
    """Area under the PRO curve up to ``fpr_limit``, divided by it (1 = every region found before any
    normal pixel is flagged). The curve is linearly interpolated at the limit, as MVTec AD's code does."""
    fpr, pro = pro_curve(masks, maps)
    keep = fpr <= fpr_limit
    x, y = fpr[keep], pro[keep]
    if x[-1] < fpr_limit:
        j = int(np.searchsorted(fpr, fpr_limit))
        x0, x1, y0, y1 = fpr[j - 1], fpr[j], pro[j - 1], pro[j]
        x, y = np.r_[x, fpr_limit], np.r_[y, y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)]
    return float(np.trapezoid(y, x) / fpr_limit)
