"""Protocol splits: pure functions of (source, protocol, class, seed); labels 1 = anomaly.

Every split's ``train`` holds normal samples only; ``val`` is carved from the
training side (never from ``test``) and holds both classes whenever the
protocol allows it, so model selection never peeks at test data.
``description`` records what was done, including the source indices of each
part so invariants can be checked and trials compared row for row.

Protocols
---------
``one-class-anomalous`` (survey, Di Mattia et al. 2019; EGBAD paper text)
    Pool the official train and test sets; class k is the anomaly. Shuffle
    with the seed; 80 % -> training side, 20 % -> test. From the training side
    ``val_fraction`` goes to validation (natural anomaly ratio), and the
    anomalies are dropped from the rest, which becomes ``train``.
``one-class-anomalous-ganomaly`` (GANomaly code ``lib/data.py``
    ``get_mnist_anomaly_dataset`` with ``manualseed`` set; EGBAD's code
    ``data/mnist.py`` does the same)
    Pool train and test; shuffle the *normal* samples with the seed; 80 % of
    them -> training side, 20 % -> test together with *every* sample of class
    k. The reference code has no validation set; here ``val_fraction`` of the
    normal training side plus the same fraction of the anomalous class
    (taken out before the test set is built) form it.
``one-class-normal`` (Deep SVDD, Ruff et al. 2018)
    Train on the official training images of class k; test on the official
    test set (class k normal, all others anomalous). Validation: ``val_fraction``
    of the class-k training images plus an equal share of the other classes'
    *training* images, at the test set's anomaly ratio.
``kdd`` (EGBAD code ``data/kdd.py``)
    'normal.' traffic is the anomaly (label 1), attacks are normal. The rows
    are split 50/50 with ``df.sample(frac=0.5, random_state=42)`` semantics
    (a fixed split: the seed does *not* change it, as in EGBAD, where seeds
    vary the model only). Training = the training half without 'normal.'
    rows. Test = ``_adapt(rho=0.2)``: every attack row of the test half plus
    'normal.' rows (shuffled with RandomState(42)) so that they make up 20 %.
    EGBAD's code fits a MinMaxScaler on the training rows but discards the
    result (``scaler.transform(x_train)`` is never assigned): ganad scales,
    fitting on training rows only. Validation: ``val_fraction`` of the
    training half, taken before its 'normal.' rows are dropped.
``custom``
    For a user's own folders / CSV files: ``train`` given (normal only) and a
    labelled ``test`` given. Validation: ``val_fraction`` of the training
    images (normal only), so selection falls back to the last epoch unless
    the user supplies anomalies.
``csv-holdout``
    One labelled CSV: shuffled 80/20 like ``one-class-anomalous``.
"""

from __future__ import annotations

import numpy as np

from ganad.data.types import ArraySet, Source, Split
from ganad.errors import DataError

PROTOCOLS = ("one-class-anomalous", "one-class-anomalous-ganomaly", "one-class-normal", "kdd", "custom", "csv-holdout")
# the protocols that single out one class (--class); the others ignore it
CLASS_PROTOCOLS = ("one-class-anomalous", "one-class-anomalous-ganomaly", "one-class-normal")


def _pool(src: Source) -> ArraySet:
    if src.test is None:
        return src.train
    return ArraySet(np.concatenate([src.train.x, src.test.x]), np.concatenate([src.train.y, src.test.y]))


def _check_class(src: Source, cls: int | None) -> int:
    n = len(src.class_names)
    choices = f"choose 0..{n - 1} ({', '.join(f'{i}={c}' for i, c in enumerate(src.class_names))})"
    if cls is None:
        raise DataError(f"this protocol singles out one class of {src.name}: give --class; {choices}")
    if not 0 <= int(cls) < n:
        raise DataError(f"class {cls} does not exist in {src.name}: {choices}")
    ys = [src.train.y] + ([src.test.y] if src.test is not None else [])
    if not any((y == int(cls)).any() for y in ys):
        raise DataError(f"class {cls} ({src.class_names[int(cls)]}) has no samples in {src.name}")
    return int(cls)


def _require_anomalies(src: Source, what: str) -> None:
    """A labelled set that must hold anomalies: say which label value was looked for, and what was found."""
    if (src.train.y == 1).any():
        return
    col, val = src.info.get("label_column"), src.info.get("anomaly_value")
    hint = f"; no row has {col} == {val!r}" if col else ""
    known = src.info.get("label_values")
    if col and known:
        hint += f" (labels in the training CSV: {', '.join(map(repr, known[:10]))})"
    raise DataError(f"{src.name}: {what} holds no anomalous samples{hint}; check --anomaly-value")


def _part(pool: ArraySet, idx: np.ndarray, anomalous: np.ndarray) -> ArraySet:
    idx = np.asarray(idx, dtype=np.int64)
    return ArraySet(pool.x[idx], anomalous[idx].astype(np.int64), pool.y[idx])


def _finish(
    pool: ArraySet, anomalous: np.ndarray, tr: np.ndarray, va: np.ndarray, te: np.ndarray, spec_src: Source, desc: dict
) -> Split:
    if len(tr) == 0:
        raise DataError(
            f"{spec_src.name}: no normal samples left for training after the {desc['protocol']} split "
            f"({int((~anomalous).sum())} normal of {len(anomalous)} in all); check the class or label value"
        )
    missing = [name for name, flag in (("normal", False), ("anomalous", True)) if not (anomalous[te] == flag).any()]
    if missing:  # AUROC, AUPRC and F1 need both classes: refuse instead of writing NaN metrics
        raise DataError(
            f"{spec_src.name}: the test part of the {desc['protocol']} split holds no {' and no '.join(missing)} "
            f"samples ({len(te)} samples in all); metrics need both classes"
        )
    if anomalous[tr].any():
        raise AssertionError("protocol bug: anomaly in training set")
    split = Split(
        _part(pool, tr, anomalous),
        _part(pool, va, anomalous),
        _part(pool, te, anomalous),
        spec_src.spec,
        desc,
        class_names=list(spec_src.class_names),
    )
    desc.update(
        sizes={"train": len(tr), "val": len(va), "test": len(te)},
        anomaly_ratio={
            "val": float(anomalous[va].mean()) if len(va) else 0.0,
            "test": float(anomalous[te].mean()) if len(te) else 0.0,
        },
        index={"train": tr.tolist(), "val": va.tolist(), "test": te.tolist()},
    )
    return split


def make_split(
    source: Source,
    protocol: str,
    cls: int | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    test: Source | None = None,
) -> Split:
    """Split ``source`` by ``protocol`` (see the module docstring); labels 1 = anomaly."""
    if protocol not in PROTOCOLS:
        raise DataError(f"unknown protocol '{protocol}'; choose one of: {', '.join(PROTOCOLS)}")
    if not 0 <= val_fraction < 0.5:
        raise DataError(f"val_fraction must be in [0, 0.5), got {val_fraction}")
    rng = np.random.default_rng(seed)
    desc: dict = {
        "protocol": protocol,
        "dataset": source.name,
        "class": cls,
        "seed": seed,
        "val_fraction": val_fraction,
    }

    if protocol == "one-class-anomalous":
        k = _check_class(source, cls)
        pool = _pool(source)
        anomalous = pool.y == k
        order = rng.permutation(len(pool))
        n_side = int(0.8 * len(order))
        side, te = order[:n_side], order[n_side:]
        n_val = int(val_fraction * len(side))
        va, rest = side[:n_val], side[n_val:]
        tr = rest[~anomalous[rest]]
        desc["class_name"] = source.class_names[k]
        return _finish(pool, anomalous, tr, va, te, source, desc)

    if protocol == "one-class-anomalous-ganomaly":
        k = _check_class(source, cls)
        pool = _pool(source)
        anomalous = pool.y == k
        normal_idx = np.flatnonzero(~anomalous)[rng.permutation(int((~anomalous).sum()))]
        anom_idx = np.flatnonzero(anomalous)[rng.permutation(int(anomalous.sum()))]
        n_side = int(0.8 * len(normal_idx))
        side, te_norm = normal_idx[:n_side], normal_idx[n_side:]
        n_val, n_val_a = int(val_fraction * len(side)), int(val_fraction * len(anom_idx))
        va = np.concatenate([side[:n_val], anom_idx[:n_val_a]])
        tr = side[n_val:]
        te = np.concatenate([te_norm, anom_idx[n_val_a:]])
        desc["class_name"] = source.class_names[k]
        return _finish(pool, anomalous, tr, va, te, source, desc)

    if protocol == "one-class-normal":
        k = _check_class(source, cls)
        if source.test is None:
            raise DataError(f"{source.name} has no official test split; use one-class-anomalous")
        pool = _pool(source)
        n_train = len(source.train)
        anomalous = pool.y != k
        own = np.flatnonzero(~anomalous[:n_train])[rng.permutation(int((~anomalous[:n_train]).sum()))]
        others = np.flatnonzero(anomalous[:n_train])
        n_val = int(val_fraction * len(own))
        te = np.arange(n_train, len(pool))
        ratio = float(anomalous[te].mean())
        n_val_a = min(len(others), round(n_val * ratio / max(1 - ratio, 1e-9)))
        va = np.concatenate([own[:n_val], rng.choice(others, n_val_a, replace=False)])
        tr = np.sort(own[n_val:])
        desc["class_name"] = source.class_names[k]
        return _finish(pool, anomalous, tr, va, te, source, desc)

    if protocol == "kdd":
        if source.name != "kdd99":
            raise DataError(f"protocol 'kdd' is for the kdd99 data set, not {source.name}")
        pool = source.train
        anomalous = pool.y == source.class_names.index("normal.")
        split_rng = np.random.RandomState(42)  # fixed, as EGBAD's df.sample(frac=0.5, random_state=42)
        order = split_rng.permutation(len(pool))
        half = round(0.5 * len(pool))
        train_half, test_half = order[:half], np.sort(order[half:])
        n_val = int(val_fraction * len(train_half))
        va, rest = train_half[:n_val], train_half[n_val:]
        tr = np.sort(rest[~anomalous[rest]])
        inliers, outliers = test_half[~anomalous[test_half]], test_half[anomalous[test_half]]
        adapt_rng = np.random.RandomState(42)  # EGBAD _adapt
        outliers = outliers[adapt_rng.permutation(len(outliers))]
        n_out = int(len(inliers) * 0.2 / (1 - 0.2))
        te = np.concatenate([inliers, outliers[:n_out]])
        te = te[adapt_rng.permutation(len(te))]
        desc.update(
            note="fixed EGBAD split (random_state 42); the seed varies the model only",
            threshold="EGBAD run_kdd: 80th percentile of test scores",
        )
        return _finish(pool, anomalous, tr, va, te, source, desc)

    if protocol == "custom":
        if test is None:
            raise DataError("protocol 'custom' needs a labelled test set (test folder or test CSV)")
        _require_anomalies(test, "the test set")
        if source.spec != test.spec:
            raise DataError(f"training data has shape {source.spec.shape} but test data has {test.spec.shape}")
        normal = source.train.y == 0
        idx = np.flatnonzero(normal)[rng.permutation(int(normal.sum()))]
        n_val = int(val_fraction * len(idx))
        pool = ArraySet(
            np.concatenate([source.train.x, test.train.x]),
            np.concatenate([np.zeros(len(source.train), dtype=np.int64), test.train.y]),
        )
        anomalous = np.concatenate([~normal, test.train.y == 1])
        te = np.arange(len(source.train), len(pool))
        return _finish(pool, anomalous, np.sort(idx[n_val:]), np.sort(idx[:n_val]), te, source, desc)

    # csv-holdout
    _require_anomalies(source, "the only CSV (no test CSV given)")
    pool = source.train
    anomalous = pool.y == 1
    order = rng.permutation(len(pool))
    n_side = int(0.8 * len(order))
    side, te = order[:n_side], order[n_side:]
    n_val = int(val_fraction * len(side))
    va, rest = side[:n_val], side[n_val:]
    return _finish(pool, anomalous, rest[~anomalous[rest]], va, te, source, desc)
