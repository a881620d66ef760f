"""PyOD and ganad side by side on the same KDD Cup 99 split, at equal work.

Why: PyOD is what most people reach for first, and it ships an AnoGAN and an
ALAD (a BiGAN-family detector like EGBAD). This script answers "how do
ganad's detectors compare with PyOD's, in accuracy and per-sample speed, when
both get the same rows and the same budget?" with one JSON document.

Data: the ``kdd`` protocol split exactly as ``ganad train --protocol kdd``
makes it (``ganad.run.prepare_split``: EGBAD's fixed 50/50 split, 'normal.'
traffic as the anomaly, test at 20 % anomalies), subsampled with
``--max-train`` / ``--max-test`` the same way ``RunConfig.max_train`` /
``max_test`` do (seeded; the test subset keeps the anomaly ratio). Rows are
min-max scaled on the training rows (ganad's ``Preprocessor``); ganad's
detectors get the raw rows and do that themselves, PyOD's get the same scaled
matrix with ``preprocessing=False``.

Detectors: PyOD's AnoGAN, ALAD and IForest (a non-GAN baseline); ganad's
AnoGAN, EGBAD and GANomaly. All are trained on the same training rows and
scored on the same test rows; every metric uses ganad's KDD threshold rule
(80th percentile of the test scores, ``ganad.metrics``).

"Equal work" (the JSON's ``equal_work`` section lists every matched and
unmatched setting): the same number of epochs (passes over the training rows)
and batch size for every GAN, the same number of latent-search steps Γ for the
two AnoGANs (PyOD's ``epochs_query``), and network widths, latent sizes and
learning rates copied from ganad's nets into PyOD's constructor arguments.
PyOD's ALAD counts one mini-batch as an "epoch", so it is given
``epochs x floor(n_train / batch_size)`` of them.

Timing: ``fit_seconds`` is the wall time of ``fit`` (which, in both libraries,
also scores the training rows: for the AnoGANs that is a latent search per
training row). The training phase alone is timed too: ganad reports it
(``fit_result_.train_seconds``); for PyOD the script notes the moment the
AnoGAN builds its query model and the moment ALAD first scores, without
changing what either computes.

Defaults: 3,000 training rows, 5,000 test rows, 30 epochs, batch 64, Γ = 100
(the paper's 500 would make PyOD's one-row-at-a-time search take about half
an hour), one torch thread. They take 5-10 minutes on 2 CPU cores, 4-6 of
them in PyOD's AnoGAN search (about 1 ms per row per step); fewer epochs
leave the GANs under-trained on KDD (GANomaly: AUROC 0.7 after 5 epochs,
0.99 after 30). Usage::

    GANAD_DATA_DIR=/path/to/datasets python benchmarks/pyod_kdd.py --out docs/results/pyod_kdd.json

Needs PyOD: ``pip install 'ganad[bench]'``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import sklearn
import torch
from torch import nn

import ganad
from ganad import atomic, engine
from ganad.config import RunConfig
from ganad.data import Preprocessor
from ganad.metrics import evaluate_scores, threshold_from_rule
from ganad.models import MODELS
from ganad.run import prepare_split

#: in running order: cheap first, PyOD's one-row-at-a-time AnoGAN search last
DETECTORS = ("ganad_anogan", "ganad_egbad", "ganad_ganomaly", "pyod_iforest", "pyod_alad", "pyod_anogan")
REPEAT_ROWS = 256  # test rows scored a second time to check that scores are repeatable
T0 = time.perf_counter()


def log(msg: str) -> None:
    """Progress on stderr (stdout carries only the JSON document)."""
    print(f"[pyod_kdd {time.perf_counter() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def require_pyod() -> dict[str, ModuleType]:
    """PyOD's three detector modules, or a one-line error telling the user how to install them.

    PyOD's AnoGAN and ALAD also import pandas, which PyOD does not declare;
    the ``bench`` extra installs both.
    """
    try:
        import pyod
        from pyod.models import alad, anogan, iforest
    except ImportError as e:
        sys.exit(f"pyod_kdd.py: error: PyOD is not installed ({e}); run: pip install 'ganad[bench]'")
    return {"pyod": pyod, "anogan": anogan, "alad": alad, "iforest": iforest}


# -- helpers ------------------------------------------------------------------------------------
def linear_layers(*modules: nn.Module) -> list[str]:
    """Every Linear layer of ``modules`` as 'in->out', to show the network widths that were matched."""
    return [f"{m.in_features}->{m.out_features}" for mod in modules for m in mod.modules() if isinstance(m, nn.Linear)]


def n_params(*modules: nn.Module) -> int:
    return sum(p.numel() for mod in modules for p in mod.parameters())


def weights(*modules: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for mod in modules for p in mod.parameters()]


def changed(before: list[torch.Tensor], *modules: nn.Module) -> bool:
    after = [p.detach() for mod in modules for p in mod.parameters()]
    return any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def repeatable(score: Callable[[np.ndarray], np.ndarray], x: np.ndarray, first: np.ndarray) -> bool:
    """Does scoring the first rows again give the same scores (no dropout, no weight updates, no state)?"""
    return bool(np.allclose(score(x[:REPEAT_ROWS]), first[:REPEAT_ROWS], rtol=1e-5, atol=1e-7))


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def clean(o: Any) -> Any:
    """JSON-safe: NaN/inf become null, numpy scalars become Python numbers."""
    if isinstance(o, dict):
        return {str(k): clean(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [clean(v) for v in o]
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


def ratio(pyod_value: float | None, ganad_value: float | None) -> float | None:
    """PyOD time / ganad time (> 1: ganad is faster per sample)."""
    if not pyod_value or not ganad_value:
        return None
    return pyod_value / ganad_value


# -- PyOD phase clocks (observe, never change, what PyOD computes) --------------------------------
@contextlib.contextmanager
def anogan_clock(mod: ModuleType, steps: int, n_rows: int, progress: bool = True) -> Iterator[dict[str, Any]]:
    """Note when PyOD's AnoGAN.fit ends training and starts its per-row latent search.

    ``fit`` builds ``QueryModel`` right after the last training epoch; a
    factory swapped in for the duration of ``fit`` records that moment and a
    copy of G's and D's weights (to check whether the search changes them),
    builds the real QueryModel, and counts search steps with a forward
    pre-hook (for progress). It draws no random numbers, so PyOD's results
    are unchanged.
    """
    marks: dict[str, Any] = {}
    original = getattr(mod, "QueryModel", None)
    if original is None:  # another PyOD layout: no phase split, fit still works
        yield marks
        return
    every = max(steps * max(n_rows // 10, 1), 1)

    def count(_module: nn.Module, _inputs: Any) -> None:  # one call per search step
        marks["calls"] += 1
        if progress and marks["calls"] % every == 0:
            log(f"  PyOD AnoGAN search: {marks['calls'] // steps}/{n_rows} training rows")

    def clocked_query_model(generator: nn.Module, discriminator: nn.Module, latent_dim_G: int) -> nn.Module:
        marks["search_start"] = time.perf_counter()
        marks["weights_before_search"] = weights(generator, discriminator)
        marks["calls"] = 0
        mod.QueryModel = original  # QueryModel.__init__ calls super(QueryModel, self): the name must be the class
        try:
            query_model = original(generator, discriminator, latent_dim_G)
        finally:
            mod.QueryModel = clocked_query_model
        marks["hook"] = query_model.register_forward_pre_hook(count)
        return query_model

    mod.QueryModel = clocked_query_model
    try:
        yield marks
    finally:
        mod.QueryModel = original
        if "hook" in marks:  # the search ends with fit: decision_function's calls are not search steps
            marks.pop("hook").remove()


# -- the detectors ----------------------------------------------------------------------------
def run_pyod_anogan(mods: dict[str, ModuleType], data: dict[str, Any], a: argparse.Namespace) -> dict[str, Any]:
    """PyOD's AnoGAN with ganad AnoGAN's widths, latent size, learning rates, epochs, batch size and Γ."""
    h = MODELS["anogan"].defaults
    det = mods["anogan"].AnoGAN(
        activation_hidden="leaky_relu",  # one activation for G and D; ganad: ReLU in G, LeakyReLU(0.2) in D
        dropout_rate=0.2,  # ganad's D dropout; PyOD also puts it in G
        latent_dim_G=h["nz"] or 32,  # ganad AnoGAN nz=None -> 32 for rows (gan/kdd_utilities.py)
        G_layers=[64, 128],  # ganad's MLPDecoder hidden widths
        D_layers=[256, 128],  # ganad's MLPDiscriminator hidden widths
        epochs=a.epochs,
        batch_size=a.batch_size,
        learning_rate=h["lr"],
        learning_rate_query=h["search_lr"],
        epochs_query=a.search_steps,
        preprocessing=False,
        device=a.device,
        verbose=0,
    )
    x_tr, x_te = data["x_train"], data["x_test"]
    engine.seed_everything(a.seed)
    with anogan_clock(mods["anogan"], a.search_steps, len(x_tr), a.progress) as marks:
        t0 = time.perf_counter()
        det.fit(x_tr)
        t_end = time.perf_counter()
    nets = (det.generator, det.discriminator)
    before_scoring = weights(*nets)
    scores, score_s = timed(lambda: det.decision_function(x_te))
    out: dict[str, Any] = {
        "library": "pyod",
        "class": "pyod.models.anogan.AnoGAN",
        "params": det.get_params(),
        "fit_seconds": t_end - t0,
        "train_seconds": None,  # set below when the query-model clock could be attached
        "score_seconds": score_s,
        "scores": scores,
        "scores_repeatable": repeatable(det.decision_function, x_te, scores),
        "networks": {"generator": linear_layers(det.generator), "discriminator": linear_layers(det.discriminator)},
        "parameters": n_params(*nets),
        "observed": {
            "weights_changed_while_scoring_test_rows": changed(before_scoring, *nets),
        },
    }
    if "search_start" in marks:
        out["train_seconds"] = marks["search_start"] - t0
        out["latent_search_seconds"] = t_end - marks["search_start"]
        out["latent_search_rows"] = len(x_tr)
        out["observed"]["latent_search_steps_run"] = marks["calls"]
        out["observed"]["weights_changed_by_latent_search_in_fit"] = changed(marks["weights_before_search"], *nets)
    return out


def run_pyod_alad(mods: dict[str, ModuleType], data: dict[str, Any], a: argparse.Namespace) -> dict[str, Any]:
    """PyOD's ALAD with EGBAD's KDD widths, latent size and learning rate, and as many mini-batch steps."""
    h = MODELS["egbad"].defaults
    x_tr, x_te = data["x_train"], data["x_test"]
    steps = a.epochs * (len(x_tr) // min(a.batch_size, len(x_tr)))
    det = mods["alad"].ALAD(
        activation_hidden_gen="relu",  # PyOD offers tanh/sigmoid/relu; ganad: LeakyReLU(0.2) E, ReLU G
        activation_hidden_disc="relu",  # ganad: LeakyReLU(0.1)
        dropout_rate=0.2,  # EGBAD's KDD D dropout; PyOD also puts it in E and G
        latent_dim=32,  # EGBAD's KDD latent size (ganad nz=None -> 32 for rows)
        enc_layers=[64],  # ganad MLPEncoder: 121 -> 64 -> nz
        dec_layers=[64, 128],  # ganad MLPDecoder: nz -> 64 -> 128 -> 121
        disc_xz_layers=[128, 128],  # EGBAD D(x, z): x->128, z->128, joint 128; PyOD: concat(x, z) -> 128 -> 128
        disc_xx_layers=[128],  # ALAD only: no EGBAD counterpart
        disc_zz_layers=[32],  # ALAD only: no EGBAD counterpart
        learning_rate_gen=h["lr"],
        learning_rate_disc=h["lr"],
        epochs=steps,  # PyOD's ALAD "epoch" is ONE mini-batch step
        batch_size=a.batch_size,
        preprocessing=False,
        device=a.device,
        verbose=0,
    )
    marks: list[float] = []
    original = det.get_outlier_scores

    def clocked(x: np.ndarray) -> np.ndarray:  # fit ends by scoring the training rows: note when
        marks.append(time.perf_counter())
        return original(x)

    det.get_outlier_scores = clocked  # an instance attribute, removed right after fit
    engine.seed_everything(a.seed)
    t0 = time.perf_counter()
    det.fit(x_tr)
    t_end = time.perf_counter()
    del det.get_outlier_scores
    nets = (det.enc, det.dec, det.disc_xz, det.disc_xx, det.disc_zz)
    scores, score_s = timed(lambda: det.decision_function(x_te))
    return {
        "library": "pyod",
        "class": "pyod.models.alad.ALAD",
        "params": det.get_params(),
        "fit_seconds": t_end - t0,
        "train_seconds": (marks[0] - t0) if marks else None,
        "score_seconds": score_s,
        "scores": scores,
        "scores_repeatable": repeatable(det.decision_function, x_te, scores),
        "networks": {
            "encoder": linear_layers(det.enc),
            "generator": linear_layers(det.dec),
            "discriminator_xz": linear_layers(det.disc_xz),
            "discriminator_xx": linear_layers(det.disc_xx),
            "discriminator_zz": linear_layers(det.disc_zz),
        },
        "parameters": n_params(*nets),
        "observed": {
            "minibatch_steps": steps,
            "networks_in_train_mode_while_scoring": any(m.training for m in nets),
        },
    }


def run_ganad(name: str, params: dict[str, Any], data: dict[str, Any], a: argparse.Namespace) -> dict[str, Any]:
    """A ganad detector through its PyOD-style API, fed the raw rows (it min-max scales them itself)."""
    cls = ganad.get_detector_class(name)
    det = cls(
        epochs=a.epochs, batch_size=a.batch_size, device=a.device, seed=a.seed, verbose=False, **params
    )  # no validation data: the last epoch is kept, as in PyOD
    raw_tr, raw_te = data["raw_train"], data["raw_test"]
    _, fit_s = timed(lambda: det.fit(raw_tr))
    if det.preprocessor_.to_dict() != data["preprocessor"].to_dict():
        raise AssertionError("ganad scaled the training rows differently from the rows given to PyOD")
    m = det.model_
    nets = {
        k: getattr(m, k) for k in ("encoder", "encoder1", "decoder", "generator", "encoder2", "netd") if hasattr(m, k)
    }
    before = weights(*nets.values())
    scores, score_s = timed(lambda: det.decision_function(raw_te))
    out: dict[str, Any] = {
        "library": "ganad",
        "class": f"ganad.{cls.__name__}",
        "params": det.get_params(),
        "fit_seconds": fit_s,
        "train_seconds": det.fit_result_.train_seconds,
        "score_seconds": score_s,
        "scores": scores,
        "scores_repeatable": repeatable(det.decision_function, raw_te, scores),
        "networks": {k: linear_layers(v) for k, v in nets.items()},
        "parameters": n_params(*nets.values()),
        "observed": {"weights_changed_while_scoring_test_rows": changed(before, *nets.values())},
    }
    if name == "anogan":  # fit ends with a batched latent search over the training rows (decision_scores_)
        out["latent_search_seconds"] = fit_s - det.fit_result_.train_seconds
        out["latent_search_rows"] = len(raw_tr)
    return out


def run_pyod_iforest(mods: dict[str, ModuleType], data: dict[str, Any], a: argparse.Namespace) -> dict[str, Any]:
    """PyOD's IForest at its defaults (100 trees, one job): the non-GAN reference point."""
    det = mods["iforest"].IForest(n_estimators=100, n_jobs=1, random_state=a.seed)
    x_tr, x_te = data["x_train"], data["x_test"]
    _, fit_s = timed(lambda: det.fit(x_tr))
    scores, score_s = timed(lambda: det.decision_function(x_te))
    return {
        "library": "pyod",
        "class": "pyod.models.iforest.IForest",
        "params": {k: v for k, v in det.get_params().items() if k != "behaviour"},
        "fit_seconds": fit_s,
        "train_seconds": None,
        "score_seconds": score_s,
        "scores": scores,
        "scores_repeatable": repeatable(det.decision_function, x_te, scores),
    }


# -- what was matched, what could not be, and PyOD's defects (from reading PyOD's source) -----------
def equal_work(a: argparse.Namespace, n_train: int) -> dict[str, Any]:
    """The budget every detector got and, in words, every setting that was or could not be matched."""
    bs = min(a.batch_size, n_train)
    return {
        "epochs": a.epochs,
        "batch_size": a.batch_size,
        "latent_search_steps": a.search_steps,
        "pyod_alad_epochs_argument": a.epochs * (n_train // bs),
        "matched": [
            "Rows: the same training rows for every detector, min-max scaled on them (ganad's Preprocessor; "
            "ganad scales them itself and the script checks the result is identical; PyOD gets preprocessing=False).",
            "Test rows and threshold: the same rows; precision/recall/F1 at the 80th percentile of each detector's "
            "test scores (ganad's KDD rule, ganad.metrics.threshold_from_rule('percentile:80')).",
            f"Epochs: {a.epochs} passes over the training rows for every GAN. PyOD's ALAD counts ONE mini-batch as "
            f"an epoch, so it gets epochs={a.epochs} x floor({n_train}/{bs}) = {a.epochs * (n_train // bs)}.",
            f"Batch size {a.batch_size} for every GAN.",
            f"AnoGAN latent search: {a.search_steps} Adam steps per row in both (PyOD epochs_query, ganad "
            "search_steps), Adam lr 0.01 on the latent in both (PyOD learning_rate_query, ganad search_lr).",
            "AnoGAN networks: latent 100, G 100->64->128->121, D 121->256->128->1 in both; Adam lr 2e-4 for G "
            "and D; dropout 0.2 in D.",
            "EGBAD / ALAD networks: latent 32, encoder 121->64->32, generator 32->64->128->121, Adam lr 1e-5 "
            "(EGBAD's KDD value) for every network; dropout 0.2 in the discriminators.",
            f"Hardware: device {a.device!r} and {a.threads} torch thread(s) for every detector.",
            "Model selection: none. ganad gets no validation data, so it keeps the last epoch, as PyOD does.",
            "Warm-up: every detector is fitted and scored once on a few rows (untimed) before the timed runs, "
            "so torch's one-time first-call costs land on no detector.",
        ],
        "not_matched": [
            "Adam betas: PyOD fixes (0.9, 0.999); ganad uses beta1 = 0.5 (DCGAN's setting).",
            "Activations: PyOD's AnoGAN has one activation for G and D (leaky_relu, slope 0.01, chosen); ganad "
            "uses ReLU in G and LeakyReLU(0.2) in D. PyOD's ALAD offers tanh/sigmoid/relu only (relu chosen); "
            "EGBAD uses LeakyReLU(0.2) in E, ReLU in G, LeakyReLU(0.1) in D.",
            "Dropout: PyOD applies dropout_rate in every network, G and E included (AnoGAN: also before the "
            "first layer); ganad only in D.",
            "PyOD's AnoGAN draws the training latent from U(0, 1) (torch.rand) and smooths real labels to 0.9; "
            "ganad draws N(0, I) and uses label 1.",
            "AnoGAN search loss: PyOD mean|x - G(z)| + mean|D(x) - D(G(z))| with equal weights, D(.) being D's "
            "output probability (index_D_layer_for_recon_error is never used); ganad (1 - lambda) sum|x - G(z)| "
            "+ lambda sum|f(x) - f(G(z))| with lambda = 0.1 on D's penultimate features (the paper's loss).",
            "AnoGAN search start: PyOD's z is the output of a Linear layer on zeros, carried over (with Adam's "
            "moments) from the previous row; ganad starts every row from the same fixed z_1 ~ N(0, I).",
            "Last partial batch: PyOD's AnoGAN DataLoader keeps it; ganad drops it (drop_last). PyOD's ALAD "
            "takes each step's batch as the first rows after reshuffling all training rows.",
            "EGBAD and ALAD are different models: ALAD adds the D_xx and D_zz discriminators (more work per step) "
            "and input noise N(0, 0.1^2); its D_xz reads concat(x, z) through 128 -> 128 where EGBAD's D(x, z) "
            "has separate 128-wide x and z branches and a joint 128 layer (parameter counts are reported). "
            "Scores: ALAD |D_xx(x, x) - D_xx(x, G(E(x)))|^2 on output probabilities; EGBAD "
            "0.9 ||x - G(E(x))||_1 + 0.1 feature matching (score_method='fm').",
            "IForest is not a GAN: it has no epochs or batches (100 trees, PyOD defaults).",
        ],
        "pyod_defects": [
            "PyOD's AnoGAN.fit runs its latent search one TRAINING row at a time, and the search's Adam "
            "optimiser holds the generator's and discriminator's weights (QueryModel contains G and D) with "
            "dropout on: every searched row changes G and D, so a row's score depends on the rows searched "
            "before it (see observed.weights_changed_by_latent_search_in_fit). decision_scores_ come from this.",
            "PyOD's AnoGAN.decision_function (the test rows) does NOT search: it loops one row at a time and "
            "compares every row with the same G(z), z being what the last training row's search left. Its test "
            "scores are a distance to one fixed reconstruction, not AnoGAN's score, and its scoring time is not "
            "a search's cost: the per-row search cost is measured inside fit (latent_search_ms_per_sample).",
            "PyOD's ALAD never puts its networks in eval mode: it scores with dropout on, so the same rows get "
            "different scores on every call (see scores_repeatable).",
            "PyOD's ALAD 'epochs' are single mini-batch steps, not passes over the data.",
            "PyOD's AnoGAN and ALAD import pandas, which PyOD does not declare (ganad's bench extra adds it).",
        ],
    }


def summarise(rec: dict[str, Any], y: np.ndarray, rule: str, n_train: int, a: argparse.Namespace) -> dict[str, Any]:
    """Metrics at ganad's KDD threshold and per-sample timings, key facts first."""
    s = np.asarray(rec.pop("scores"), dtype=np.float64)
    n_test = len(s)
    out: dict[str, Any] = {"library": rec.pop("library"), "class": rec.pop("class")}
    if np.isfinite(s).all():
        thr, desc = threshold_from_rule(rule, scores=s)
        m = evaluate_scores(y, s, thr)
        out.update(
            {k: m[k] for k in ("auroc", "auprc", "precision", "recall", "f1")},
            threshold=thr,
            threshold_rule=desc,
            best_f1_any_threshold=m["best_f1"],
        )
    else:
        out["error"] = f"{int((~np.isfinite(s)).sum())} non-finite test scores"
    epochs = a.epochs if out["class"] != "pyod.models.iforest.IForest" else None
    fit_s, train_s, score_s = rec.pop("fit_seconds"), rec.pop("train_seconds"), rec.pop("score_seconds")
    out.update(
        fit_seconds=fit_s,
        train_seconds=train_s,
        score_seconds=score_s,
        fit_us_per_sample_per_epoch=1e6 * fit_s / (n_train * epochs) if epochs else None,
        train_us_per_sample_per_epoch=1e6 * train_s / (n_train * epochs) if epochs and train_s is not None else None,
        fit_us_per_sample=1e6 * fit_s / n_train,
        score_ms_per_sample=1e3 * score_s / n_test,
    )
    if "latent_search_seconds" in rec:
        lss, rows = rec.pop("latent_search_seconds"), rec.pop("latent_search_rows")
        out.update(
            latent_search_seconds=lss,
            latent_search_ms_per_sample=1e3 * lss / rows,
            latent_search_us_per_sample_per_step=1e6 * lss / rows / a.search_steps,
        )
    out.update(rec)  # scores_repeatable, networks, parameters, observed, params
    return out


def speed_ratios(d: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per-sample speed ratios of the matched pairs (PyOD time / ganad time: > 1 means ganad is faster)."""

    def pair(p: str, g: str, keys: dict[str, str]) -> dict[str, Any] | None:
        if p not in d or g not in d or "error" in d[p] or "error" in d[g]:
            return None
        return {name: ratio(d[p].get(k), d[g].get(k)) for name, k in keys.items()}

    anogan = pair(
        "pyod_anogan",
        "ganad_anogan",
        {
            "training_per_sample_per_epoch": "train_us_per_sample_per_epoch",
            "latent_search_per_sample": "latent_search_ms_per_sample",
            "fit_per_sample_per_epoch": "fit_us_per_sample_per_epoch",
            "test_scoring_per_sample_NOT_equal_work": "score_ms_per_sample",
        },
    )
    bigan = pair(
        "pyod_alad",
        "ganad_egbad",
        {
            "training_per_sample_per_epoch": "train_us_per_sample_per_epoch",
            "fit_per_sample_per_epoch": "fit_us_per_sample_per_epoch",
            "test_scoring_per_sample": "score_ms_per_sample",
        },
    )
    return {
        "meaning": "PyOD seconds per sample / ganad seconds per sample at equal work; > 1 means ganad is faster",
        "anogan_pyod_over_ganad": anogan,
        "anogan_notes": (
            "latent_search_per_sample: both libraries search every training row with the same number of steps "
            "inside fit (PyOD one row at a time, updating G and D; ganad a batch of rows, G and D frozen). "
            "test_scoring_per_sample_NOT_equal_work: PyOD's decision_function does no search, ganad's does."
        ),
        "alad_over_egbad": bigan,
        "alad_over_egbad_notes": "different models of one family: ALAD does more work per step (3 discriminators)",
    }


# -- main -----------------------------------------------------------------------------------------
def positive_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--max-train", type=int, default=3000, help="training rows kept (seeded, as RunConfig.max_train)")
    ap.add_argument("--max-test", type=int, default=5000, help="test rows kept (stratified, as RunConfig.max_test)")
    ap.add_argument("--epochs", type=positive_int, default=30, help="passes over the training rows, every GAN")
    ap.add_argument("--batch-size", type=positive_int, default=64)
    ap.add_argument("--search-steps", type=positive_int, default=100, help="AnoGAN latent search steps (both)")
    ap.add_argument("--seed", type=int, default=0, help="subsampling and model seed (the KDD split itself is fixed)")
    ap.add_argument(
        "--threads", type=positive_int, default=1, help="torch threads (1: small MLPs gain nothing from more)"
    )
    ap.add_argument("--device", default="cpu", help="torch device for every detector")
    ap.add_argument("--data-dir", default=os.environ.get("GANAD_DATA_DIR"))
    ap.add_argument("--detectors", nargs="+", choices=DETECTORS, default=list(DETECTORS))
    ap.add_argument("--out", help="also write the JSON document to this file")
    a = ap.parse_args(argv)
    if a.batch_size < 2:
        ap.error("--batch-size must be >= 2 (batch norm needs two samples)")
    a.progress = True  # search progress lines on stderr (off for the warm-up)
    return a


def make_data(raw_train: np.ndarray, raw_test: np.ndarray) -> dict[str, Any]:
    """Raw rows for ganad (it scales them itself) and the same rows min-max scaled on training rows for PyOD."""
    pre = Preprocessor.fit(raw_train, "tabular")
    return {
        "raw_train": raw_train,
        "raw_test": raw_test,
        "x_train": pre.transform(raw_train),
        "x_test": pre.transform(raw_test),
        "preprocessor": pre,
    }


def make_runner(
    name: str, mods: dict[str, ModuleType], data: dict[str, Any], a: argparse.Namespace
) -> Callable[[], dict[str, Any]]:
    """The call that fits and scores detector ``name`` on ``data`` with budget ``a``."""
    return {
        "ganad_anogan": lambda: run_ganad("anogan", {"search_steps": a.search_steps, "search_seed": a.seed}, data, a),
        "ganad_egbad": lambda: run_ganad("egbad", {}, data, a),
        "ganad_ganomaly": lambda: run_ganad("ganomaly", {}, data, a),
        "pyod_iforest": lambda: run_pyod_iforest(mods, data, a),
        "pyod_alad": lambda: run_pyod_alad(mods, data, a),
        "pyod_anogan": lambda: run_pyod_anogan(mods, data, a),
    }[name]


def run(a: argparse.Namespace, mods: dict[str, ModuleType]) -> dict[str, Any]:
    """Load the split, run every asked-for detector, and assemble the JSON document."""
    log("loading KDD Cup 99 and making the kdd split")
    cfg = RunConfig(
        model="anogan",
        dataset="kdd99",
        protocol="kdd",
        seed=a.seed,
        data_dir=a.data_dir,
        max_train=a.max_train or None,
        max_test=a.max_test or None,
    )
    split = prepare_split(cfg)
    data = make_data(split.train.x, split.test.x)
    n_train, y = len(split.train), split.test.y
    rule = cfg.resolved_threshold()
    log(f"{n_train} training rows, {len(y)} test rows ({y.mean():.1%} anomalies)")
    selected = [n for n in DETECTORS if n in a.detectors]

    # Warm-up: torch's first forward/backward/optimiser step carries one-time costs that would land on
    # whichever detector runs first; one tiny fit + score of each detector takes them out of the timings.
    n_warm = min(2 * a.batch_size, n_train)
    warm_data = make_data(split.train.x[:n_warm], split.test.x[:32])
    warm_args = argparse.Namespace(**{**vars(a), "epochs": 1, "search_steps": 2, "progress": False})
    log(f"warm-up: every detector once on {n_warm} rows (not timed)")
    for name in selected:
        with contextlib.suppress(Exception):  # a real failure shows up (and is recorded) in the timed run
            make_runner(name, mods, warm_data, warm_args)()

    results: dict[str, dict[str, Any]] = {}
    for name in selected:
        note = f" (searches {n_train} rows x {a.search_steps} steps one row at a time)" if name == "pyod_anogan" else ""
        log(f"{name}: fit + score{note}")
        try:
            results[name] = summarise(make_runner(name, mods, data, a)(), y, rule, n_train, a)
        except Exception as e:  # record and go on: one failure must not lose a 10-minute run
            results[name] = {"error": f"{type(e).__name__}: {e}"}
        r = results[name]
        log(
            f"{name}: "
            + (
                r["error"]
                if "error" in r
                else f"AUROC {r['auroc']:.3f}  F1 {r['f1']:.3f}  fit {r['fit_seconds']:.1f}s  "
                f"score {r['score_ms_per_sample']:.3f} ms/row"
            )
        )

    return {
        "benchmark": "pyod_kdd",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "args": {k: v for k, v in vars(a).items() if k not in ("data_dir", "progress")},
        "split": {
            "dataset": "kdd99",
            "protocol": "kdd",
            "seed": a.seed,
            "max_train": a.max_train,
            "max_test": a.max_test,
            "n_train": n_train,
            "n_test": len(y),
            "test_anomaly_ratio": float(y.mean()),
            "threshold_rule": rule,
            "description": {k: v for k, v in split.description.items() if k not in ("index", "source_info")},
        },
        "equal_work": equal_work(a, n_train),
        "detectors": results,
        "speed_ratios": speed_ratios(results),
        "machine": {
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "device": a.device,
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "versions": {
            "ganad": ganad.__version__,
            "ganad_git_commit": git_commit(),
            "pyod": getattr(mods["pyod"], "__version__", None),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
        },
    }


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    mods = require_pyod()  # before the (slow) data loading
    torch.set_num_threads(a.threads)
    stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):  # anything a library prints stays out of the JSON
        doc = clean(run(a, mods))
    text = json.dumps(doc, indent=2)
    print(text, file=stdout)
    if a.out:
        atomic.atomic_write_bytes(Path(a.out), (text + "\n").encode())
        log(f"wrote {a.out}")
    return 1 if any("error" in r for r in doc["detectors"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
