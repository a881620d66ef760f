"""A run: config -> data split -> detector -> metrics -> run folder.

The CLI's ``train``/``evaluate``/``score`` and the benchmark grid all go
through these functions, so a benchmark trial is an ordinary run folder:

```
RUN/
  config.yaml                 the resolved RunConfig (re-runnable, versionable)
  model.safetensors/.json     selected weights + model, preprocessing, threshold, split
  checkpoint.safetensors/.json, best.safetensors   full training state (for --resume)
  log.jsonl                   one JSON line per epoch: every loss term, val AUROC
  metrics.json                test metrics, threshold rule, timing, selection rule
  scores.csv                  per test sample: label, raw score, min-max scaled score, prediction
  heatmaps.png                top-scored test images beside |x - x_hat|
```
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from ganad import atomic, checkpoint, diagnostics, engine
from ganad.config import API_FIELDS, RunConfig, dump_yaml, load_yaml
from ganad.data import (
    load_csv,
    load_image_folder,
    load_labelled_image_folder,
    load_mvtec,
    load_source,
    make_split,
    read_masks,
)
from ganad.data.protocols import CLASS_PROTOCOLS
from ganad.data.sources import TABULAR_SOURCES
from ganad.data.transforms import as_nchw, resize_maps, scale_pixels, to_uint8
from ganad.data.types import ArraySet, Split
from ganad.detector import WEIGHTS, Detector, fit_together, get_detector_class, load
from ganad.errors import ConfigError, DataError, RunExistsError, TrainingError
from ganad.metrics import aupro, evaluate_scores, flag, per_group_auroc, pixel_auroc, threshold_from_rule
from ganad.models import get_model_class
from ganad.plots import heatmap_grid
from ganad.sinks import make_sink

CONFIG = "config.yaml"
METRICS = "metrics.json"
SCORES = "scores.csv"
FAILED = "failed.json"
HEATMAPS = "heatmaps.png"
#: every name a run folder may hold: this module's files, the engine's checkpoints and log, the
#: saved model (weights + JSON). ``--overwrite`` replaces a folder only when it holds nothing else
#: (and the temporary files of these names), and a resumed run only ever deletes their temporaries.
RUN_FILES = frozenset(
    {
        CONFIG,
        METRICS,
        SCORES,
        FAILED,
        HEATMAPS,
        engine.CHECKPOINT,
        str(Path(engine.CHECKPOINT).with_suffix(".json")),
        engine.BEST,
        engine.LOG,
        WEIGHTS,
        str(Path(WEIGHTS).with_suffix(".json")),
    }
)


def prepare_split(cfg: RunConfig) -> Split:
    """The protocol split a config asks for, optionally subsampled (seeded) to a budget."""
    size = cfg.resolved_image_size()
    if cfg.dataset == "folder":
        if not cfg.train_dir or not cfg.test_dir:
            raise ConfigError(
                "dataset 'folder' needs train_dir (normal images) and test_dir (normal/ and anomalous/ subfolders)"
            )
        _refuse_overlap(cfg.train_dir, cfg.test_dir)
        train = load_image_folder(cfg.train_dir, size=size, channels=cfg.channels)
        test = load_labelled_image_folder(cfg.test_dir, size=size or train.spec.shape[1:], channels=cfg.channels)
        real = [{Path(f).resolve() for f in src.info["files"]} for src in (train, test)]
        shared = sorted(real[0] & real[1])
        if shared:
            raise DataError(
                f"{shared[0]} is both a training image ({cfg.train_dir}) and a test image ({cfg.test_dir}); "
                f"{len(shared)} file(s) are shared: training must not see the test images"
            )
        if test.spec.channels != train.spec.channels:
            raise DataError(
                f"{cfg.train_dir} holds {train.spec.channels}-channel images but {cfg.test_dir} holds "
                f"{test.spec.channels}-channel ones; pass --channels 1 or 3 to convert both"
            )
        split = make_split(train, "custom", seed=cfg.seed, val_fraction=cfg.val_fraction, test=test)
        split.description["images_read"] = {**train.info["images_read"], **test.info["images_read"]}
        if cfg.mask_dir:  # the custom protocol keeps the test set whole and in order
            anomalous = Path(cfg.test_dir) / "anomalous"
            files = [Path(f) for f in test.info["files"]]
            wanted = [
                Path(cfg.mask_dir) / p.relative_to(anomalous).with_name(f"{p.stem}_mask.png") if y else None
                for p, y in zip(files, test.train.y, strict=True)
            ]
            masks = read_masks(files, wanted, test.train.x.shape[2:])
            split.test = type(split.test)(split.test.x, split.test.y, None, masks)
    elif cfg.dataset == "mvtec":
        if not cfg.category:
            raise ConfigError("dataset 'mvtec' needs category (e.g. bottle), and data_dir unless it was downloaded")
        train, test = load_mvtec(cfg.data_dir, cfg.category, size=size, channels=cfg.channels)
        split = make_split(train, "custom", seed=cfg.seed, val_fraction=cfg.val_fraction, test=test)
        # the custom protocol keeps the test set whole and in order: attach what only MVTec has
        split.test = type(split.test)(split.test.x, split.test.y, test.train.classes, test.train.masks)
        split.class_names = list(test.class_names)
    elif cfg.dataset == "csv":
        if not cfg.train_csv or not cfg.label_column or cfg.anomaly_value is None:
            raise ConfigError("dataset 'csv' needs train_csv, label_column and anomaly_value")
        train = load_csv(cfg.train_csv, cfg.label_column, cfg.anomaly_value)
        test = load_csv(cfg.test_csv, cfg.label_column, cfg.anomaly_value, like=train) if cfg.test_csv else None
        protocol = "custom" if test is not None else "csv-holdout"
        split = make_split(train, protocol, seed=cfg.seed, val_fraction=cfg.val_fraction, test=test)
        split.description["source_info"] = train.info  # the CSV encoding, reused by `ganad score`
    else:
        source = load_source(cfg.dataset, data_dir=cfg.data_dir)
        split = make_split(source, cfg.protocol, cfg.cls, seed=cfg.seed, val_fraction=cfg.val_fraction)
    rng = np.random.default_rng(cfg.seed)
    if cfg.max_train and len(split.train) > cfg.max_train:
        split.train = split.train.subset(np.sort(rng.choice(len(split.train), cfg.max_train, replace=False)))
        split.description["max_train"] = cfg.max_train
    if cfg.max_test and len(split.test) > cfg.max_test:
        split.test = _stratified(split.test, cfg.max_test, rng)
        split.val = _stratified(split.val, max(cfg.max_test // 2, 2), rng) if len(split.val) else split.val
        split.description["max_test"] = cfg.max_test
    if cfg.max_val and len(split.val) > cfg.max_val:  # after max_test, which halves it: one rng sequence
        split.val = _stratified(split.val, cfg.max_val, rng)
        split.description["max_val"] = cfg.max_val
    sizes = {"train": len(split.train), "val": len(split.val), "test": len(split.test)}
    before = split.description.get("sizes")
    if before is not None and before != sizes:  # record what was trained and scored, and what it came from
        split.description["sizes_before_subsampling"] = before
    split.description["sizes"] = sizes
    return split


def _refuse_overlap(train_dir: str, test_dir: str) -> None:
    """Training and test folders must be separate trees: one inside the other trains on test images."""
    a, b = Path(train_dir).resolve(), Path(test_dir).resolve()
    if a == b or a in b.parents or b in a.parents:
        inner, outer = (train_dir, test_dir) if b in a.parents else (test_dir, train_dir)
        raise DataError(
            f"{inner} lies inside {outer}: --train-dir and --test-dir must be separate folders "
            "(training would read the test images, anomalies included)"
        )


def _stratified(s: ArraySet, n: int, rng: np.random.Generator) -> ArraySet:
    """A subset of ``n`` samples keeping the anomaly ratio (and at least one of each class)."""
    if len(s) <= n:
        return s
    idx = []
    for label in (0, 1):
        pool = np.flatnonzero(s.y == label)
        if len(pool):
            k = max(1, round(n * len(pool) / len(s)))
            idx.append(rng.choice(pool, min(k, len(pool)), replace=False))
    return s.subset(np.sort(np.concatenate(idx)))


def make_detector(cfg: RunConfig, progress: bool = True) -> Detector:
    """The detector a config describes; hyper-parameters are checked (and typed) here, before any I/O."""
    cls = get_detector_class(cfg.model)
    common = {name: getattr(cfg, name) for name in API_FIELDS}  # the settings a run and a detector share
    common.update(
        image_size=cfg.resolved_image_size(),
        verbose=progress,
        threads=None,  # the process's setting: ganad's CLI (--threads, else free cores) or a grid worker's
    )
    clash = sorted(set(cfg.params) & set(common))
    if clash:
        raise ConfigError(f"params: {', '.join(clash)} are run fields, set them at the top level")
    engine.select_device(cfg.device)  # an unavailable device fails here, before the run folder is made
    params = get_model_class(cfg.model).validate_hparams(cfg.params)
    params = {k: params[k] for k in cfg.params}
    try:
        return cls(**params, **common)
    except TypeError as e:
        raise ConfigError(f"params: {e}") from None


#: settings a resumed run may change: they decide where it runs and how its scores are judged,
#: not what it learns
RESUME_MAY_CHANGE = ("device", "threshold", "maps", "log")


def open_run_dir(out: Path, cfg: RunConfig, *, overwrite: bool, resume: bool) -> None:
    """Create ``out`` for a new run, or check it may be resumed / overwritten.

    A folder is only ever replaced with ``overwrite``, and only if it looks like a
    ganad run folder (so a mistyped ``--out ~`` cannot wipe a home directory).
    """
    if out.exists() and not out.is_dir():
        raise RunExistsError(f"{out} is a file, not a run folder; choose another --out")
    if out.exists() and any(out.iterdir()):
        if resume:
            if not (out / CONFIG).is_file():
                raise RunExistsError(f"{out}: cannot resume, no {CONFIG} in this folder")
            old = load_yaml(out / CONFIG)
            diff = [k for k, v in cfg.to_dict().items() if k not in RESUME_MAY_CHANGE and old.to_dict().get(k) != v]
            if diff:
                raise ConfigError(
                    f"{out}: cannot resume, the config differs in: {', '.join(diff)} (use a new --out or --overwrite)"
                )
            checkpoint.remove_stale_temps(out, RUN_FILES)  # half-written files of the killed run
            if cfg.to_dict() != old.to_dict():  # e.g. a corrected --threshold: the run's record says what it used
                atomic.atomic_write_bytes(out / CONFIG, dump_yaml(cfg).encode())
            return
        if not overwrite:
            raise RunExistsError(f"{out} already exists; pass --overwrite to replace it or --resume to continue it")
        if not (out / CONFIG).is_file():
            raise RunExistsError(f"{out} is not empty and is not a ganad run folder; refusing to overwrite it")
        foreign = foreign_entries(out)
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise RunExistsError(
                f"{out} holds files a ganad run does not write ({shown}); refusing to overwrite it: "
                "move them or choose another --out"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic.atomic_write_bytes(out / CONFIG, dump_yaml(cfg).encode())


#: sub-folders a run writes: TensorBoard's event files (``--log tensorboard``)
RUN_DIRS = frozenset({"tensorboard"})


def foreign_entries(folder: Path) -> list[str]:
    """Names in ``folder`` that no ganad run writes (sub-folders, a user's notes, ...), sorted.

    A folder with a ``config.yaml`` is not necessarily a run: a project folder holding its own
    ``config.yaml`` beside a thesis must never be deleted by ``--overwrite``.
    """
    return sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in folder.iterdir()
        if p.is_symlink()
        or (p.is_dir() and p.name not in RUN_DIRS)
        or (not p.is_dir() and not (p.name in RUN_FILES or atomic.temp_target(p.name) in RUN_FILES))
    )


def train(
    cfg: RunConfig, out: str | Path, *, overwrite: bool = False, resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Train and evaluate one run into ``out``; returns the metrics record."""
    out = Path(out)
    split, det, sink = _start(cfg, out, overwrite, resume, progress)
    select_test = cfg.select_on == "test"
    try:
        det.fit(
            split.train.x,
            X_val=split.val.x if len(split.val) else None,
            y_val=split.val.y if len(split.val) else None,
            X_test=split.test.x if select_test else None,
            y_test=split.test.y if select_test else None,
            run_dir=out,
            resume=resume,
            on_epoch=None if sink is None else sink.epoch,
        )
    except TrainingError as e:  # e.g. a NaN loss: record it instead of writing NaN metrics
        atomic.atomic_write_json(out / FAILED, {"status": "failed", "error": str(e)})
        raise
    return _conclude(det, split, cfg, out, sink)


def train_seeds(
    cfgs: list[RunConfig],
    outs: list[str | Path],
    *,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """:func:`train` for runs that differ only in their seed, trained as one stacked model when they can
    be (:func:`ganad.engine.fit_seeds`); each run still gets its own folder, log, checkpoint, model and
    ``metrics.json``, as from :func:`train`. Runs that cannot be stacked (image nets, a ``--log`` sink,
    resumable checkpoints) train one by one; a stack that fails (a NaN loss in one seed) is trained
    again one by one, so one seed's failure is that seed's alone."""
    from ganad.stacking import why_not_stack

    outs = [Path(o) for o in outs]
    rest = [{k: v for k, v in c.to_dict().items() if k != "seed"} for c in cfgs]
    kind = "tabular" if cfgs[0].dataset in TABULAR_SOURCES else "image"
    solo = (
        len(cfgs) < 2
        or any(r != rest[0] for r in rest)
        or why_not_stack(get_model_class(cfgs[0].model), kind)
        or any(c.log for c in cfgs)
        or (resume and any((o / engine.CHECKPOINT).is_file() for o in outs))
    )
    if not solo:
        try:
            return _train_stacked(cfgs, outs, overwrite, progress)
        except TrainingError:  # one seed diverged: each alone, from scratch, into the folders made here
            return [train(c, o, overwrite=True, progress=progress) for c, o in zip(cfgs, outs, strict=True)]
    return [train(c, o, overwrite=overwrite, resume=resume, progress=progress) for c, o in zip(cfgs, outs, strict=True)]


def _train_stacked(cfgs: list[RunConfig], outs: list[Path], overwrite: bool, progress: bool) -> list[dict[str, Any]]:
    started = [_start(c, o, overwrite, False, progress) for c, o in zip(cfgs, outs, strict=True)]
    select_test = cfgs[0].select_on == "test"
    inputs = [
        (
            split.train.x,
            split.val.x if len(split.val) else None,
            split.val.y if len(split.val) else None,
            split.test.x if select_test else None,
            split.test.y if select_test else None,
        )
        for split, _, _ in started
    ]
    fit_together([det for _, det, _ in started], inputs, run_dirs=outs)
    return [
        _conclude(det, split, cfg, out, sink) for (split, det, sink), cfg, out in zip(started, cfgs, outs, strict=True)
    ]


def _start(cfg: RunConfig, out: Path, overwrite: bool, resume: bool, progress: bool) -> tuple[Split, Detector, Any]:
    """Before training: the split (bad data fails before any folder exists), the detector, the run
    folder and the ``--log`` sink."""
    split = prepare_split(cfg)
    det = make_detector(cfg, progress)
    open_run_dir(out, cfg, overwrite=overwrite, resume=resume)
    sink = make_sink(cfg.log, out, cfg.to_dict())  # TensorBoard / MLflow beside log.jsonl (--log)
    (out / FAILED).unlink(missing_ok=True)
    return split, det, sink


def _conclude(det: Detector, split: Split, cfg: RunConfig, out: Path, sink: Any) -> dict[str, Any]:
    """After training: evaluate, save the model, then ``metrics.json`` (last: it marks the run done)."""
    try:
        record = evaluate(det, split, cfg, out, write_metrics=False)
    except TrainingError as e:  # NaN scores: record it instead of writing NaN metrics
        atomic.atomic_write_json(out / FAILED, {"status": "failed", "error": str(e)})
        raise
    det.save(
        out,
        extra_meta={
            "config": cfg.to_dict(),
            "split": record["split"],
            "selection": record["selection"],
            "data_info": split.description.get("source_info", {}),
        },
    )
    # metrics.json marks a finished run (benchmark grids skip trials that have it), so it is
    # written last: a run killed before this line resumes and finishes, never counts as done
    # without its model
    atomic.atomic_write_json(out / METRICS, record)
    if sink is not None:
        sink.finish(record, out)
    return record


def evaluate(
    det: Detector,
    split: Split,
    cfg: RunConfig,
    out: Path | None,
    *,
    write_metrics: bool = True,
    resolve_threshold: bool = True,
) -> dict[str, Any]:
    """Score the test split, threshold it, write scores/heat maps (and metrics).

    With ``resolve_threshold`` (training) the config's rule is resolved on this split and becomes
    the detector's ``threshold_``, which ``det.save`` then stores; without it (``ganad evaluate``)
    the saved value is used. Either way ``metrics.json``, ``scores.csv``, ``predict`` and
    ``ganad score`` share one value and one comparison (:func:`ganad.metrics.flag`).
    """
    t0 = time.perf_counter()
    test_x = det.transform_input(split.test.x, what="the test split")  # once: scored, then drawn
    scores = det.scores_of(test_x, what="the test split")
    score_seconds = time.perf_counter() - t0
    if resolve_threshold:
        val_scores = (
            None
            if not len(split.val)
            else det.validation_scores_  # the fit scored split.val at these weights already (AnoGAN: a search)
            if getattr(det, "validation_scores_", None) is not None and len(det.validation_scores_) == len(split.val)
            else det.decision_function(split.val.x, what="the validation split")
        )
        rule = cfg.resolved_threshold()
        thr, thr_desc = threshold_from_rule(
            rule,
            scores=scores,
            val_scores=val_scores,
            val_labels=split.val.y if len(split.val) else None,
            train_scores=det.decision_scores_,
        )
        det.set_threshold(thr, thr_desc, rule=rule)
    thr, thr_desc = det.threshold_, det.threshold_description_
    fit = getattr(det, "fit_result_", None)
    selection = {
        "select_on": fit.selected_on if fit else "unknown",
        "selected_epoch": fit.selected_epoch if fit else None,
        "note": (
            "model selected on the TEST set (the papers' habit): test metrics are optimistic"
            if fit and fit.selected_on == "test"
            else ""
        ),
    }
    protocol = split.description.get("protocol", cfg.protocol)  # a user's folders / CSV: custom or csv-holdout
    record: dict[str, Any] = {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "protocol": protocol,
        "cls": cfg.cls if protocol in CLASS_PROTOCOLS else None,  # kdd and a user's data ignore --class
        "seed": cfg.seed,
        "params": det.model_.hparams,
        "metrics": evaluate_scores(split.test.y, scores, thr),
        "threshold_rule": det.threshold_rule_,
        "threshold_description": thr_desc,
        "selection": selection,
        "train_seconds": fit.train_seconds if fit else None,
        "epochs_run": fit.epochs_run if fit else None,
        "threads": fit.threads if fit else None,
        "steps": fit.steps if fit else None,
        "score_ms_per_sample": 1000 * score_seconds / max(len(test_x), 1),
        "device": str(det.model_.device),
        "split": {k: v for k, v in split.description.items() if k not in ("index", "source_info")},
    }
    if split.test.masks is not None and det.preprocessor_.kind == "image":  # the MVTec AD layout
        pixel, per_defect = _mask_metrics(det, test_x, scores, split)
        record["metrics"].update(pixel)
        record["per_defect_auroc"] = per_defect
    record["diagnostics"] = _diagnose(det, split, test_x, scores, cfg.seed, score_seconds / max(len(test_x), 1))
    record["warnings"] = diagnostics.warnings(record["diagnostics"])
    if out is not None:
        atomic.atomic_write_bytes(out / SCORES, _scores_csv(split.test.y, scores, thr))
        _write_heatmaps(det, split.test.x, split.test.y, scores, out / HEATMAPS, cfg.maps)
        if write_metrics:
            atomic.atomic_write_json(out / METRICS, record)
    return record


def _diagnose(
    det: Detector, split: Split, test_x: np.ndarray, scores: np.ndarray, seed: int, seconds_per_sample: float
) -> dict[str, Any]:
    """:func:`ganad.diagnostics.diagnose` on a seeded subsample of the training split.

    Subsampled before preprocessing, so a 200k-row training split costs the
    transform of 2,000 rows. A failure here is recorded, never fatal: the
    metrics of a finished training run are worth more than its diagnostics.
    """
    tr = diagnostics.subsample(len(split.train), np.random.default_rng(seed))
    classes = split.train.classes
    try:
        return diagnostics.diagnose(
            det.model_,
            det.transform_input(split.train.x[tr]),
            test_x,
            scores,
            train_classes=None if classes is None else classes[tr],
            class_names=split.class_names,
            seed=seed,
            seconds_per_sample=seconds_per_sample,
        )
    except Exception as e:  # reported in the record and as a warning line
        return {"error": f"{type(e).__name__}: {e}"}


def _scores_csv(labels: np.ndarray | None, scores: np.ndarray, thr: float, names: list[str] | None = None) -> bytes:
    """CSV rows: id, [label,] raw score, GANomaly-style min-max scaled score, prediction."""
    lo, hi = float(scores.min()), float(scores.max())
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", *(["label"] if labels is not None else []), "score", "score_scaled", "predicted"])
    for i, s in enumerate(scores):
        w.writerow(
            [
                names[i] if names else i,
                *([int(labels[i])] if labels is not None else []),
                f"{s:.6g}",
                f"{(s - lo) / max(hi - lo, 1e-12):.6g}",
                int(flag(s, thr)),
            ]
        )
    return buf.getvalue().encode()


def _mask_metrics(
    det: Detector, test_x: np.ndarray, scores: np.ndarray, split: Split
) -> tuple[dict[str, float], dict[str, float]]:
    """Pixel AUROC and AUPRO of the anomaly maps against the ground-truth masks, and image AUROC
    per defect type (MVTec AD's metrics); maps are compared at the masks' resolution."""
    test = split.test
    names = (
        np.asarray(split.class_names)[test.classes]
        if test.classes is not None
        else np.asarray(["anomalous"] * len(test))
    )
    per_defect = per_group_auroc(test.y, scores, names)
    maps = det.maps_of(test_x)
    if maps is None:  # AnoGAN-style scores without a map: image metrics only
        return {}, per_defect
    maps = resize_maps(maps, test.masks.shape[1:])
    pixel = {"pixel_auroc": pixel_auroc(test.masks, maps)}
    if test.masks.any():
        pixel["aupro"] = aupro(test.masks, maps)
    return pixel, per_defect


def _write_heatmaps(det: Detector, raw: np.ndarray, y: np.ndarray, scores: np.ndarray, path: Path, k: int) -> None:
    """The ``k`` highest-scored test samples as read (``raw``) with their maps at that resolution."""
    if k <= 0 or det.preprocessor_.kind != "image":
        return
    top = np.argsort(-scores)[:k]
    maps = det.anomaly_map(raw[top])  # at the resolution of the images as read, over those images
    if maps is not None:
        pre = det.preprocessor_
        shown = scale_pixels(to_uint8(as_nchw(np.asarray(raw[top]), pre.channels), pre.float_range).astype(np.float32))
        heatmap_grid(path, shown, maps, scores[top], y[top], title=f"{det.model_name}: highest-scored test images")


def evaluate_run(run_dir: str | Path, *, data_dir: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Re-score a finished run's test split from its saved model (same split: it is a pure function)."""
    run_dir = Path(run_dir)
    cfg = load_yaml(run_dir / CONFIG)
    if data_dir:
        cfg = cfg.replace(data_dir=data_dir)
    det = load(run_dir, device=cfg.device)
    det.verbose = progress
    return evaluate(det, prepare_split(cfg), cfg, None, resolve_threshold=False)


def read_metrics(run_dir: Path) -> dict[str, Any]:
    p = run_dir / METRICS
    if not p.is_file():
        raise DataError(f"{run_dir}: no {METRICS} (is the run finished?)")
    return json.loads(p.read_text())
