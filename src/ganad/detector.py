"""scikit-learn / PyOD style estimators over the engine and the models.

Every registered model gets a class here (``ganad.GANomaly``, ``ganad.AnoGAN``,
...) generated from its ``defaults``, so adding a model never touches this
file. The constructor stores parameters only; :meth:`Detector.fit` learns
``model_``, ``preprocessor_``, ``decision_scores_`` and ``threshold_``;
``get_params``/``set_params``/``sklearn.base.clone`` work because each
generated ``__init__`` carries an explicit signature.

Saved detectors are a folder holding ``model.safetensors`` (weights) and
``model.json`` (model name, hyper-parameters, input spec, preprocessing,
threshold, versions): loading never executes code.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError as SklearnNotFittedError

from ganad import checkpoint, config, engine
from ganad.data.transforms import Preprocessor, as_nchw, image_size_pair, resize_maps
from ganad.errors import CheckpointError, ConfigError, DataError, GanadError
from ganad.metrics import flag, threshold_from_rule
from ganad.models import MODELS, get_model_class
from ganad.models.base import Model
from ganad.resources import free_cores, require, torch_threads
from ganad.version import __version__

WEIGHTS = "model.safetensors"


class NotFittedError(ConfigError, SklearnNotFittedError):
    """A detector used before ``fit`` or ``load``: one clear line for the CLI, and scikit-learn's
    ``NotFittedError`` (a ValueError and an AttributeError) for code written against its contract."""


#: the parameters a detector has beyond the run settings it shares with ``ganad train``
#: (:data:`ganad.config.API_FIELDS`): default and meaning, the one declaration of each
DETECTOR_SETTINGS: dict[str, tuple[Any, str]] = {
    "contamination": (
        0.1,
        "expected share of anomalies, in (0, 0.5); sets ``threshold_`` as the (1 - contamination) quantile "
        "of the training scores, as PyOD does. ``ganad train`` replaces it by its run's rule "
        "(``--threshold``), saved with the model",
    ),
    "verbose": (True, "show progress bars"),
    "threads": (
        "auto",
        "torch CPU threads for fit and scoring: 'auto' (the cores not already busy, "
        ":func:`ganad.resources.free_cores`: all of an idle machine, 1 on a loaded 2-core one), a number, "
        "or None to leave torch's setting as it is; restored afterwards",
    ),
    "score_batch_size": (
        engine.SCORE_BATCH_SIZE,
        "samples per forward pass when scoring: memory, never results (a sample's score does not depend "
        "on the samples scored with it)",
    ),
}
#: every detector's parameters beside its model's hyper-parameters, with their defaults
COMMON_PARAMS: dict[str, Any] = {**config.API_FIELDS, **{k: d for k, (d, _) in DETECTOR_SETTINGS.items()}}


def _common_params_doc() -> str:
    """The numpydoc section of the common parameters, written from their declarations."""
    lines = ["Parameters common to all detectors", "----------------------------------"]
    for name, f in config.FIELDS.items():
        if f.metadata["api"]:
            allowed = config.allowed(name)
            lines += [
                f"{name} : default {f.default!r}" + (f"; {allowed}" if allowed else ""),
                f"    {_sentence(f.metadata['help'])}",
            ]
    for name, (default, meaning) in DETECTOR_SETTINGS.items():
        lines += [f"{name} : default {default!r}", f"    {_sentence(meaning)}"]
    return "\n".join(lines)


def _sentence(text: str) -> str:
    return text if text.endswith(".") else text + "."


class Detector(BaseEstimator):
    """Base of the generated detector classes; see :func:`detector_class`.

    Assign ``threshold_`` to use your own threshold; ``predict``, ``labels_``, ``save`` and
    ``ganad score`` all follow it, and ``threshold_rule_`` / ``threshold_description_`` say
    where it came from. The parameters every detector takes are listed below (written from
    their one declaration in :mod:`ganad.config` and :data:`DETECTOR_SETTINGS`).
    """

    model_name: ClassVar[str]

    # -- construction -------------------------------------------------------
    def _model_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in get_model_class(self.model_name).defaults}

    def _options(self) -> engine.TrainOptions:
        return engine.TrainOptions(
            epochs=self.epochs,
            steps=self.steps,
            batch_size=self.batch_size,
            seed=self.seed,
            device=self.device,
            select_on=self.select_on,
            progress=bool(self.verbose),
        )

    def _check_params(self) -> None:
        """The common parameters, checked by the run config's own types and bounds (one declaration).

        ``epochs="abc"``, ``batch_size=2.5`` or ``image_size=-1`` are one ConfigError naming the
        parameter, before any data is touched; the model's hyper-parameters are checked by the model.
        """
        c = self.contamination
        if isinstance(c, bool) or not isinstance(c, int | float) or not 0 < c < 0.5:
            raise ConfigError(f"contamination must be a number in (0, 0.5), got {c!r}")
        # image_size is checked by image_size_pair below: the API also takes (H, W)
        values = {k: getattr(self, k) for k in config.API_FIELDS if k != "image_size"}
        bad = [k for k in ("epochs", "steps", "batch_size", "seed") if isinstance(values[k], str | float | bool)]
        if bad:  # the config reader accepts "15" from YAML text; Python callers pass numbers
            raise ConfigError(f"{type(self).__name__}: {bad[0]} must be a whole number, got {values[bad[0]]!r}")
        config.from_dict(values, source=type(self).__name__)
        b = self.score_batch_size
        if isinstance(b, bool) or not isinstance(b, int) or b < 1:
            raise ConfigError(f"{type(self).__name__}: score_batch_size must be a whole number >= 1, got {b!r}")
        t = self.threads
        if not (t is None or t == "auto" or (isinstance(t, int) and not isinstance(t, bool) and t >= 1)):
            raise ConfigError(f"{type(self).__name__}: threads must be 'auto', None or a whole number >= 1, got {t!r}")
        image_size_pair(self.image_size)
        engine.select_device(self.device)

    def _threads(self) -> torch_threads:
        """The torch thread count for this call (see ``threads``), set for its duration."""
        t = getattr(self, "threads", "auto")
        return torch_threads(free_cores() if t == "auto" else t)

    # -- fitting ------------------------------------------------------------
    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray | None = None,
        *,
        X_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        X_test: np.ndarray | None = None,
        y_test: np.ndarray | None = None,
        run_dir: str | Path | None = None,
        resume: bool = False,
        on_epoch: Callable[[dict[str, Any], Model, np.ndarray | None], None] | None = None,
    ) -> Detector:
        """Train on normal samples ``X``; ``y`` is ignored (unsupervised, as in PyOD).

        ``X`` is images (N, H, W) / (N, C, H, W) / (N, H, W, C) as uint8 or
        floats in [0, 1], or rows (N, D). ``X_val, y_val`` (labels 1 = anomaly)
        enable model selection; ``run_dir`` keeps a checkpoint per epoch there
        so ``resume=True`` can continue an interrupted fit. ``on_epoch(record, model, images)`` runs
        after each epoch with a few fixed validation (else training) images as the model sees them
        (None for rows): ``ganad train --log``'s sinks draw them.
        """
        self._check_params()
        with self._threads():
            return self._fit(X, X_val, y_val, X_test, y_test, run_dir, resume, on_epoch)

    def _fit(
        self,
        X: np.ndarray,
        X_val: np.ndarray | None,
        y_val: np.ndarray | None,
        X_test: np.ndarray | None,
        y_test: np.ndarray | None,
        run_dir: str | Path | None,
        resume: bool,
        on_epoch: Callable[[dict[str, Any], Model, np.ndarray | None], None] | None = None,
    ) -> Detector:
        X, pre, xt, model, val, test = self._setup(X, X_val, y_val, X_test, y_test)
        fit_result = engine.fit(
            model,
            xt,
            self._options(),
            val=val,
            test=test,
            run_dir=Path(run_dir) if run_dir else None,
            resume=resume,
            score_batch_size=self.score_batch_size,
            on_epoch=None if on_epoch is None else self._epoch_hook(on_epoch, val[0] if val is not None else xt, pre),
        )
        return self._finish(X, pre, xt, model, fit_result)

    def _setup(
        self,
        X: np.ndarray,
        X_val: np.ndarray | None,
        y_val: np.ndarray | None,
        X_test: np.ndarray | None,
        y_test: np.ndarray | None,
    ) -> tuple[np.ndarray, Preprocessor, np.ndarray, Model, Any, Any]:
        """Everything before training: inputs checked and preprocessed, the model built under ``seed``."""
        X = _as_array(X, "X")
        kind = "tabular" if X.ndim == 2 else "image"
        pre = Preprocessor.fit(X, kind, self.image_size, self.row_scaling)
        xt = pre.transform(X, what="X")
        opts = self._options()
        engine.seed_everything(self.seed)
        params, device = self._model_params(), engine.select_device(self.device)
        bs = min(opts.batch_size, len(X))
        sizes = engine.model_sizes(self.model_name, pre.spec, params, bs)
        # estimated before the networks exist: building them for a 4096x4096 input already takes GBs
        require(engine.activation_bytes(pre.spec, params, bs), f"training {sizes}", engine.memory_hint(pre.spec.kind))
        with engine.memory_guard(f"building the networks on {device}", sizes, engine.memory_hint(pre.spec.kind)):
            model = get_model_class(self.model_name)(pre.spec, **params)
            model.to(device)
        val = (
            (pre.transform(_as_array(X_val, "X_val"), what="X_val"), _labels(y_val, X_val, "y_val"))
            if X_val is not None
            else None
        )
        test = (
            (pre.transform(_as_array(X_test, "X_test"), what="X_test"), _labels(y_test, X_test, "y_test"))
            if X_test is not None
            else None
        )
        return X, pre, xt, model, val, test

    def _finish(
        self, X: np.ndarray, pre: Preprocessor, xt: np.ndarray, model: Model, fit_result: engine.FitResult
    ) -> Detector:
        """Everything after training: the fitted attributes, training scores and the threshold."""
        self.fit_result_ = fit_result
        self.model_, self.preprocessor_ = model, pre
        self.n_features_in_ = int(np.prod(X.shape[1:]))
        #: which training samples ``decision_scores_`` and ``labels_`` belong to: None = all of them,
        #: else a seeded sample of ``model.train_score_cap`` (AnoGAN: each score is a latent search)
        cap = model.train_score_cap
        self.train_score_index_ = (
            np.sort(np.random.default_rng(self.seed).choice(len(xt), cap, replace=False))
            if cap is not None and len(xt) > cap
            else None
        )
        scored = xt if self.train_score_index_ is None else xt[self.train_score_index_]
        self.decision_scores_ = engine.score(model, scored, self.score_batch_size)
        #: scores of ``X_val`` at the fitted weights when the fit computed them with the scoring function
        #: itself (:attr:`Model.validation_is_score`), else None: a threshold on validation data reuses them
        self.validation_scores_ = fit_result.val_scores
        rule = f"contamination:{self.contamination:g}"
        self.set_threshold(*threshold_from_rule(rule, scores=self.decision_scores_), rule=rule)
        return self

    def fit_seeds(
        self,
        X: np.ndarray,
        seeds: Sequence[int],
        *,
        X_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        stack: bool = True,
    ) -> list[Detector]:
        """One fitted detector per seed of ``seeds`` (this one's parameters otherwise), trained as one
        stacked model when the model allows it (:mod:`ganad.stacking`: the four GAN detectors on rows), else
        one after another. Seed s's detector is what ``clone(self).set_params(seed=s).fit(X)`` gives,
        within float rounding and the random draws a stacked step shares (see :mod:`ganad.stacking`).
        """
        from sklearn.base import clone

        self._check_params()
        dets = [clone(self).set_params(seed=int(s)) for s in seeds]
        return fit_together(dets, [(X, X_val, y_val, None, None)] * len(dets), stack=stack)

    @staticmethod
    def _epoch_hook(
        on_epoch: Callable[[dict[str, Any], Model, np.ndarray | None], None], x: np.ndarray, pre: Preprocessor
    ) -> Callable[[dict[str, Any], Model], None]:
        from ganad.sinks import GRID_SAMPLES

        samples = x[:GRID_SAMPLES] if pre.kind == "image" else None
        return lambda record, model: on_epoch(record, model, samples)

    # -- the threshold --------------------------------------------------------
    @property
    def threshold_(self) -> float:
        """The score at and above which a sample is an anomaly (:func:`ganad.metrics.flag`)."""
        try:
            return self._threshold
        except AttributeError:
            raise AttributeError("threshold_ is set by fit(X) or load(path)") from None

    @threshold_.setter
    def threshold_(self, value: float) -> None:
        self.set_threshold(value, "set by the user", rule="value")

    def set_threshold(self, value: float, description: str, *, rule: str) -> None:
        """Set ``threshold_`` with the rule that gave it (saved with the model) and refresh ``labels_``.

        One value serves ``predict``, ``labels_``, ``save``, ``ganad score`` and a run's
        ``scores.csv`` and ``metrics.json``, so they never disagree about a sample.
        """
        if isinstance(value, bool) or not isinstance(value, int | float | np.floating) or not np.isfinite(value):
            raise ConfigError(f"threshold_ must be a finite number, got {value!r}")
        self._threshold = float(value)
        self.threshold_rule_, self.threshold_description_ = rule, description
        if getattr(self, "decision_scores_", None) is not None and not getattr(self, "meta_", None):
            self.labels_ = flag(self.decision_scores_, self._threshold)

    # -- scoring ------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(X) or load(path) first")

    def transform_input(self, X: np.ndarray, what: str = "X") -> np.ndarray:
        """Raw samples -> the float32 inputs the model sees (checks shape against the fit).

        ``what`` names the input in error messages (a file or folder for the CLI).
        """
        self._check_fitted()
        X = _as_array(X, what)
        dim = getattr(self, "n_features_in_", None)
        if self.preprocessor_.kind == "tabular" and X.ndim == 2 and dim is not None and X.shape[1] != dim:
            # scikit-learn's wording, which code written against its contract looks for
            raise DataError(
                f"{what} has {X.shape[1]} features, but {type(self).__name__} is expecting {dim} features as input"
            )
        return self.preprocessor_.transform(X, what=what)

    def decision_function(self, X: np.ndarray, *, what: str = "X") -> np.ndarray:
        """Raw anomaly scores (higher = more anomalous); weights are never changed.

        The one way scores are made: ``ganad train``'s test scores, ``ganad evaluate`` and
        ``ganad score`` call this (or :meth:`scores_of` on inputs they already transformed).
        ``what`` names the input in error messages and in the progress bar (``scoring the
        test split``), so two bars of one command say which is which.
        """
        return self.scores_of(self.transform_input(X, what=what), what=what)

    def scores_of(self, x: np.ndarray, *, what: str = "X") -> np.ndarray:
        """Scores of inputs already through :meth:`transform_input` (callers that also draw them
        transform once)."""
        self._check_fitted()
        with self._threads():
            return engine.score(
                self.model_,
                x,
                self.score_batch_size,
                progress=bool(self.verbose) and len(x) > 5000,
                description=f"scoring {what}",
            )

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """scikit-learn's convention: higher = more normal (the negated decision function)."""
        return -self.decision_function(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """1 = anomaly where the score is at or above ``threshold_``, else 0 (:func:`ganad.metrics.flag`)."""
        return flag(self.decision_function(X), self.threshold_)

    def fit_predict(self, X: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """``fit(X).labels_``: the training samples' predictions (scikit-learn's outlier-detector API).

        Every sample gets one: when ``labels_`` covers a sample of them (``train_score_index_``), the
        rest are scored here."""
        self.fit(X)
        return self.labels_ if self.train_score_index_ is None else self.predict(X)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(N, 2) [normal, anomaly] by min-max scaling against the training scores (PyOD's 'linear')."""
        s = self.decision_function(X)
        lo, hi = float(self.decision_scores_.min()), float(self.decision_scores_.max())
        p = np.clip((s - lo) / max(hi - lo, 1e-12), 0, 1)
        return np.stack([1 - p, p], axis=1)

    def anomaly_map(self, X: np.ndarray, *, what: str = "X") -> np.ndarray | None:
        """Per-pixel (H, W) or per-feature (D,) anomaly map of each sample, if the model has one.

        Image maps come at the input's resolution (a 28x28 image gets a 28x28 map, resized from the
        model's 32x32), so they overlay the picture the user has; :meth:`maps_of` gives the model's.
        """
        maps = self.maps_of(self.transform_input(X, what=what))
        if maps is None or self.preprocessor_.kind != "image":
            return maps
        h, w = as_nchw(_as_array(X, what), self.preprocessor_.channels, what=what).shape[2:]
        return resize_maps(maps, (h, w))

    def maps_of(self, x: np.ndarray) -> np.ndarray | None:
        """:meth:`anomaly_map` of inputs already through :meth:`transform_input`."""
        self._check_fitted()
        with self._threads():
            return engine.anomaly_maps(self.model_, x, self.score_batch_size)

    def reconstruct(self, X: np.ndarray, *, what: str = "X") -> np.ndarray | None:
        """The model's x_hat of each sample in its input space (for pictures), if it has one."""
        return self.reconstructions_of(self.transform_input(X, what=what))

    def reconstructions_of(self, x: np.ndarray) -> np.ndarray | None:
        """:meth:`reconstruct` of inputs already through :meth:`transform_input`."""
        self._check_fitted()
        with self._threads():
            return engine.reconstructions(self.model_, x, self.score_batch_size)

    # -- persistence --------------------------------------------------------
    def export(self, path: str | Path, format: str = "onnx", *, overwrite: bool = False) -> Path:
        """One ONNX (``format="onnx"``) or TorchScript (``"torchscript"``) file that scores raw input with
        this detector's preprocessing inside; threshold and rule in its metadata. See :mod:`ganad.export`."""
        from ganad.export import export

        return export(self, path, format, overwrite=overwrite)

    def export_parts(self, path: str | Path, format: str = "onnx", *, overwrite: bool = False) -> dict[str, Path]:
        """For AnoGAN, whose score is a latent search and not one graph: its generator and
        discriminator, one file each beside ``path`` (``model.generator.onnx``, ...). See :mod:`ganad.export`."""
        from ganad.export import export_parts

        return export_parts(self, path, format, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> Detector:
        """Load a saved detector of this class (``GANomaly.load(path)``); see :func:`ganad.load`."""
        return load(path, device, expect_model=getattr(cls, "model_name", None))

    def save(self, path: str | Path, *, extra_meta: dict[str, Any] | None = None) -> Path:
        """Write ``path/model.safetensors`` and ``path/model.json`` (atomically)."""
        self._check_fitted()
        path = Path(path)
        meta = {
            **self.model_.describe(),
            "api": type(self).__name__,
            "params": self.get_params(),
            "preprocessing": self.preprocessor_.to_dict(),
            "threshold": self.threshold_,
            "threshold_rule": self.threshold_rule_,
            "threshold_description": self.threshold_description_,
            "train_scores": {"min": float(self.decision_scores_.min()), "max": float(self.decision_scores_.max())},
            "versions": {"ganad": __version__, "torch": torch.__version__},
            **(extra_meta or {}),
        }
        checkpoint.save(path / WEIGHTS, self.model_, meta)
        return path


#: one fit's inputs: X, X_val, y_val, X_test, y_test (None where absent)
FitInputs = tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray | None]


def fit_together(
    dets: Sequence[Detector],
    inputs: Sequence[FitInputs],
    *,
    run_dirs: Sequence[Path | None] | None = None,
    stack: bool = True,
) -> list[Detector]:
    """Fit detectors that differ only in their seed (and maybe their data), as one stacked model when the
    model allows it (:func:`ganad.engine.fit_seeds`), each with its own inputs and run folder: each
    detector's ``_setup``, one :func:`engine.fit_seeds`, each one's ``_finish``. ``Detector.fit_seeds``
    (one data set) and a benchmark cell's trials (``ganad.run.train_seeds``, a split per seed) both come here.
    """
    with dets[0]._threads():
        setups = [d._setup(*x) for d, x in zip(dets, inputs, strict=True)]
        results = engine.fit_seeds(
            [s[3] for s in setups],
            [s[2] for s in setups],
            [d._options() for d in dets],
            vals=[s[4] for s in setups],
            tests=[s[5] for s in setups],
            run_dirs=list(run_dirs) if run_dirs is not None else None,
            score_batch_size=dets[0].score_batch_size,
            stack_seeds=stack,
        )
        return [d._finish(s[0], s[1], s[2], s[3], r) for d, s, r in zip(dets, setups, results, strict=True)]


def load(path: str | Path, device: str = "auto", *, expect_model: str | None = None) -> Detector:
    """Load a detector saved by :meth:`Detector.save` or a ``ganad train`` run folder.

    Only JSON and safetensors are read: loading never executes code. Every
    field of ``model.json`` is checked before use, so an edited or damaged
    file is a CheckpointError naming the field, never a KeyError or TypeError
    from deep inside. With ``expect_model`` a checkpoint of another detector
    is refused.
    """
    path = Path(path)
    weights = path / WEIGHTS if path.is_dir() else path
    if not weights.exists():
        raise CheckpointError(f"{path}: no {WEIGHTS} here (is this a run folder or saved detector?)")
    meta = checkpoint.read_meta(weights)
    jpath = weights.with_suffix(".json")
    name = _field(meta, "model", str, jpath)
    if name not in MODELS:
        raise CheckpointError(f"{jpath}: unknown model {name!r}; known: {', '.join(MODELS)}")
    if expect_model is not None and name != expect_model:
        raise CheckpointError(f"{path}: holds a '{name}' detector, not '{expect_model}'")
    model_cls = MODELS[name]
    params = _field(meta, "params", dict, jpath)
    hparams = _field(meta, "hparams", dict, jpath)
    spec = _field(meta, "spec", dict, jpath)
    threshold = _field(meta, "threshold", float, jpath)
    train_scores = _field(meta, "train_scores", dict, jpath)
    lo, hi = (_field(train_scores, k, float, jpath, "train_scores.") for k in ("min", "max"))
    if not lo <= hi or max(abs(lo), abs(hi)) > float(np.finfo(np.float32).max):  # saved from float32 scores
        raise CheckpointError(f"{jpath}: field 'train_scores' must hold float32 scores with min <= max, got {lo}, {hi}")
    try:
        spec_pre = Preprocessor.from_dict(_field(meta, "preprocessing", dict, jpath))
    except ValueError as e:
        raise CheckpointError(f"{jpath}: field 'preprocessing' is invalid ({e})") from None
    try:
        det = detector_class(model_cls)(**{**params, "device": device})
        det._check_params()  # an edited 'threads' or 'epochs' is refused here, not deep inside torch
    except (TypeError, ConfigError) as e:
        raise CheckpointError(f"{jpath}: field 'params' is invalid ({e})") from None
    try:
        # on the meta device first: sizes read from model.json allocate nothing until the file's tensors agree
        with torch.device("meta"):
            probe = model_cls(spec_pre.spec, **hparams)
    except (GanadError, TypeError, ValueError, RuntimeError) as e:  # unknown, mistyped or impossible values
        raise CheckpointError(f"{jpath}: field 'hparams' is invalid ({e})") from None
    if probe.spec.to_dict() != spec:
        diff = "; ".join(checkpoint.differences(spec, probe.spec.to_dict(), "spec."))
        raise CheckpointError(f"{jpath}: input spec does not match its preprocessing ({diff})")
    checkpoint.check_fits(probe, weights)
    model = model_cls(spec_pre.spec, **hparams)
    checkpoint.load_into(model, weights, meta)
    model.to(engine.select_device(device)).eval()
    det.model_, det.preprocessor_ = model, spec_pre
    det.decision_scores_ = np.array([lo, hi], dtype=np.float32)  # the range only: predict_proba's scale
    det.meta_ = meta
    # saved before the rule was stored with the value: it was PyOD's contamination rule
    rule = meta.get("threshold_rule", f"contamination:{params.get('contamination', 0.1)}")
    desc = meta.get("threshold_description", "contamination of training scores")
    if not isinstance(rule, str) or not isinstance(desc, str):
        raise CheckpointError(f"{jpath}: fields 'threshold_rule' and 'threshold_description' must be text")
    det.set_threshold(threshold, desc, rule=rule)
    return det


def _field(meta: dict[str, Any], key: str, kind: type, jpath: Path, prefix: str = "") -> Any:
    """``meta[key]`` checked to be a ``kind`` (a finite number for float), else a CheckpointError naming it."""
    if key not in meta:
        raise CheckpointError(f"{jpath}: field '{prefix}{key}' is missing")
    val = meta[key]
    if kind is float:
        if isinstance(val, bool) or not isinstance(val, int | float) or not np.isfinite(val):
            raise CheckpointError(f"{jpath}: field '{prefix}{key}' must be a finite number, got {val!r}")
        return float(val)
    if not isinstance(val, kind):
        raise CheckpointError(f"{jpath}: field '{prefix}{key}' must be a {kind.__name__}, got {val!r}")
    return val


def _as_array(X: Any, what: str) -> np.ndarray:
    """``X`` as a real-valued array of at least two non-empty dimensions, else one DataError naming it.

    NaN and inf are refused by the preprocessor, which names the sample and feature at fault.
    """
    if hasattr(X, "tocsr") or type(X).__module__.startswith("scipy.sparse"):
        raise DataError(f"{what} is a sparse matrix; sparse input is not supported, pass X.toarray()")
    try:
        X = np.asarray(X)
    except (ValueError, TypeError) as e:
        raise DataError(f"{what} cannot be turned into an array: {e}") from None
    if X.dtype == object:  # numbers held as Python objects are read as numbers; anything else is refused
        try:
            X = X.astype(np.float64)
        except (ValueError, TypeError):
            raise DataError(f"{what} is a ragged or non-numeric array; samples must all have one shape") from None
    if X.ndim == 1:
        raise DataError(
            f"{what} has shape {X.shape}; expected (N, D) rows or (N, [C,] H, W[, C]) images. Reshape your data: "
            "X.reshape(-1, 1) for one feature, X.reshape(1, -1) for one sample"
        )
    if X.ndim < 2 or len(X) == 0:
        raise DataError(f"{what} has shape {X.shape}; expected (N, D) rows or (N, [C,] H, W[, C]) images")
    if 0 in X.shape:  # scikit-learn's wording
        raise DataError(f"{what} has 0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
    if np.iscomplexobj(X):
        raise DataError(f"{what} has dtype {X.dtype}: Complex data not supported; samples must be real numbers")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
        raise DataError(f"{what} has dtype {X.dtype}; samples must be real numbers")
    return X


def _labels(y: Any, X: Any, what: str) -> np.ndarray:
    if y is None:
        raise DataError(f"{what} is required with {what.replace('y', 'X')}")
    y = np.asarray(y)
    if not any(np.issubdtype(y.dtype, t) for t in (np.integer, np.bool_, np.floating)):
        raise DataError(f"{what} has dtype {y.dtype}; labels must be numbers, 0 (normal) and 1 (anomaly)")
    if np.issubdtype(y.dtype, np.floating) and not np.isin(y, (0.0, 1.0)).all():
        raise DataError(f"{what} must hold 0 (normal) and 1 (anomaly) only")
    y = y.astype(int).ravel()
    if len(y) != len(X):
        raise DataError(f"{what} has {len(y)} labels for {len(X)} samples")
    if not set(np.unique(y)) <= {0, 1}:
        raise DataError(f"{what} must hold 0 (normal) and 1 (anomaly) only")
    return y


def detector_class(model_cls: type[Model]) -> type[Detector]:
    """A Detector subclass whose ``__init__`` takes the model's hyper-parameters explicitly."""
    params = {**COMMON_PARAMS, **model_cls.defaults}

    def __init__(self: Detector, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise TypeError(f"{model_cls.api_name}() got unknown parameter(s): {', '.join(unknown)}")
        for k, default in params.items():
            setattr(self, k, kwargs.get(k, default))

    __init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in params.items()]
    )
    doc = (
        f"{model_cls.api_name} detector ({model_cls.paper}).\n\n"
        f"Model hyper-parameters (paper values): "
        + ", ".join(f"{k}={v!r}" for k, v in model_cls.defaults.items())
        + "\n\n"
        + (Detector.__doc__ or "")
        + "\n"
        + _common_params_doc()
    )
    return type(
        model_cls.api_name,
        (Detector,),
        {"__init__": __init__, "model_name": model_cls.name, "__doc__": doc, "__module__": "ganad"},
    )


_CLASSES: dict[str, type[Detector]] = {}


def get_detector_class(name: str) -> type[Detector]:
    """The (cached) detector class for a registered model name."""
    if name not in _CLASSES:
        _CLASSES[name] = detector_class(get_model_class(name))
    return _CLASSES[name]
