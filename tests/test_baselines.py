"""The non-GAN baselines (pca, knn, iforest, median-l1): the same contract as the GAN detectors.

Each baseline must fit and score rows and images through the same API, CLI,
checkpoints and grids, agree with the scikit-learn estimator it is built on,
score each sample on its own, and load from safetensors to identical scores.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import NearestNeighbors

import ganad
from ganad import cli, engine
from ganad.bench import published
from ganad.bench.grid import expand, load_grid
from ganad.data import load_source, make_split
from ganad.data.protocols import PROTOCOLS
from ganad.data.types import InputSpec
from ganad.errors import ConfigError
from ganad.metrics import auroc
from ganad.models import MODELS

REPO = Path(__file__).resolve().parents[1]
BASELINES = ("pca", "knn", "iforest", "median-l1")


@pytest.fixture(scope="module")
def kdd(data_dir):
    """EGBAD's KDD protocol: 5,000 attack rows (training) and 2,000 test rows, 20 % 'normal.' (seeded)."""
    s = make_split(load_source("kdd99", data_dir=str(data_dir), download=False), "kdd", seed=0)
    rng = np.random.default_rng(0)
    te = rng.choice(len(s.test), 2000, replace=False)
    return s.train.x[rng.choice(len(s.train), 5000, replace=False)], s.test.x[te], s.test.y[te]


@pytest.fixture(scope="module")
def digits_split():
    """scikit-learn's digits, digit 0 the anomaly (no download): uint8 images (N, 1, 8, 8)."""
    s = make_split(load_source("digits"), "one-class-anomalous", 0, seed=0)
    return s.train.x, s.test.x, s.test.y


def _detector(name: str, **kw):
    return ganad.get_detector_class(name)(verbose=False, **kw)


def _rows(n: int, d: int = 7, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, d)).astype(np.float32)


# -- registry and API ----------------------------------------------------------------------
def test_baselines_are_registered_detectors_with_classes():
    for name, api in zip(BASELINES, ("PCABaseline", "KNNBaseline", "IForestBaseline", "MedianL1Baseline"), strict=True):
        assert MODELS[name].fits_in_one_pass and MODELS[name].api_name == api
        assert getattr(ganad, api) is ganad.get_detector_class(name)
    assert not any(MODELS[n].fits_in_one_pass for n in ("ganomaly", "anogan", "egbad", "dual-adversarial"))


@pytest.mark.parametrize("name", BASELINES)
def test_fits_and_scores_rows_and_images(name, kdd, digits_split):
    train, test, _ = kdd
    det = _detector(name).fit(train[:1000])
    s = det.decision_function(test[:300])
    assert det.model_.spec.kind == "tabular" and s.shape == (300,) and np.isfinite(s).all()
    assert det.fit_result_.epochs_run == 1 and det.fit_result_.selected_on == "last"
    images, test_images, _ = digits_split
    det = _detector(name, image_size=16).fit(images[:400])
    s = det.decision_function(test_images[:50])
    assert det.model_.spec == InputSpec("image", (1, 16, 16)) and s.shape == (50,) and np.isfinite(s).all()


@pytest.mark.parametrize("name", BASELINES)
def test_save_and_load_give_identical_scores_without_pickle(name, tmp_path, kdd, digits_split):
    for i, (train, test) in enumerate([(kdd[0][:2000], kdd[1][:500]), (digits_split[0], digits_split[1])]):
        det = _detector(name, seed=3).fit(train)
        folder = det.save(tmp_path / f"{name}{i}")
        assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.safetensors"]
        tensors = load_file(folder / "model.safetensors")  # plain arrays: nothing to unpickle
        assert tensors and all(k.startswith("model.") for k in tensors)
        back = ganad.load(folder)
        assert type(back).__name__ == type(det).__name__ and back.model_.name == name
        if name == "iforest":
            assert back.model_._forest is None, "the forest is re-fitted from the stored rows and seed"
        np.testing.assert_array_equal(back.decision_function(test), det.decision_function(test))


@pytest.mark.parametrize("name", BASELINES)
def test_a_samples_score_does_not_depend_on_its_batch(name, kdd, digits_split):
    for train, test in [(kdd[0][:2000], kdd[1][:32]), (digits_split[0], digits_split[1][:32])]:
        det = _detector(name).fit(train)
        x = det.transform_input(test)
        together = engine.score(det.model_, x, batch_size=32)
        alone = engine.score(det.model_, x, batch_size=1)
        shuffled = engine.score(det.model_, x[::-1].copy(), batch_size=7)[::-1]
        np.testing.assert_allclose(alone, together, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(shuffled, together, rtol=1e-5, atol=1e-5)


# -- known values: each baseline is the scikit-learn estimator it names ---------------------
def test_one_nn_distance_of_a_training_row_is_zero_and_matches_scikit_learn():
    x = _rows(300)
    det = _detector("knn", row_scaling="none").fit(x)
    assert np.all(det.decision_function(x) == 0)
    q = _rows(40, seed=1)
    for k, metric, aggregate in [(1, "l1", "kth"), (3, "l1", "kth"), (3, "l2", "mean")]:
        det = _detector("knn", row_scaling="none", k=k, metric=metric, aggregate=aggregate).fit(x)
        dist, _ = NearestNeighbors(n_neighbors=k, p=1 if metric == "l1" else 2).fit(x).kneighbors(q)
        want = dist[:, -1] if aggregate == "kth" else dist.mean(1)
        np.testing.assert_allclose(det.decision_function(q), want, rtol=1e-4, atol=1e-4)


def test_knn_metric_follows_the_input_kind_and_reference_is_a_seeded_capped_subsample():
    assert _detector("knn").fit(_rows(50)).model_.p == 1.0  # rows: the 1-NN L1
    x = _rows(500)
    a, b, c = (_detector("knn", max_reference=100, seed=s, row_scaling="none").fit(x) for s in (0, 0, 1))
    ref = a.model_.reference.numpy()
    assert ref.shape == (100, 7) and torch.equal(a.model_.reference, b.model_.reference)
    assert not torch.equal(a.model_.reference, c.model_.reference)
    assert all((x == r).all(1).any() for r in ref), "reference rows are training rows"


def test_median_l1_is_the_l1_distance_to_the_per_feature_median():
    x, q = _rows(101), _rows(20, seed=2)
    det = _detector("median-l1", row_scaling="none").fit(x)
    np.testing.assert_allclose(det.decision_function(q), np.abs(q - np.median(x, axis=0)).sum(1), rtol=1e-5)
    even = _detector("median-l1", row_scaling="none").fit(x[:100])  # even count: mean of the two middle values
    np.testing.assert_allclose(even.model_.median.numpy(), np.median(x[:100], axis=0), rtol=1e-6)


def test_pca_score_is_scikit_learns_reconstruction_error():
    x, q = _rows(400, d=12), _rows(30, d=12, seed=3)
    det = _detector("pca", row_scaling="none", n_components=4).fit(x)
    pca = PCA(n_components=4).fit(x.astype(np.float64))
    want = ((q - pca.inverse_transform(pca.transform(q))) ** 2).sum(1)
    np.testing.assert_allclose(det.decision_function(q), want, rtol=1e-4, atol=1e-5)
    kept = _detector("pca", row_scaling="none", n_components=0.9).fit(x).fit_result_.history[0]
    assert kept["explained_variance"] >= 0.9 and kept["components"] < 12
    assert _detector("pca", n_components=50).fit(x[:20]).model_.components.shape == (12, 12), "capped, not refused"


def test_iforest_score_is_scikit_learns_with_the_stored_seed():
    x, q = _rows(600), _rows(30, seed=4)
    det = _detector("iforest", row_scaling="none", n_estimators=20).fit(x)
    seed = int(det.model_.seed)
    forest = IsolationForest(n_estimators=20, max_samples=256, random_state=seed).fit(x)
    np.testing.assert_array_equal(det.decision_function(q), -forest.score_samples(q).astype(np.float32))


def test_choices_and_bounds_are_config_errors_naming_the_field():
    for name, params, field in [
        ("knn", {"metric": "cosine"}, "knn.metric"),
        ("knn", {"aggregate": "max"}, "knn.aggregate"),
        ("knn", {"k": 0}, "knn.k"),
        ("pca", {"n_components": 2.5}, "pca.n_components"),
        ("iforest", {"max_features": 2.0}, "iforest.max_features"),
        ("median-l1", {"k": 1}, "k"),
    ]:
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            _detector(name, **params).fit(_rows(20)) if name != "median-l1" else MODELS[name].validate_hparams(params)
    with pytest.raises(ConfigError, match=r"knn\.k=5"):
        _detector("knn", k=5, max_reference=3).fit(_rows(20))
    with pytest.raises(ConfigError, match="not fitted"):
        MODELS["pca"](InputSpec("tabular", (7,))).score(torch.zeros(2, 7))


# -- engine: one pass, one record, nothing to resume -----------------------------------------
def test_one_pass_fit_is_one_logged_epoch_and_a_finished_run_resumes_to_the_same_model(tmp_path, monkeypatch):
    x = _rows(200)
    det = _detector("knn", row_scaling="none", max_reference=50)
    det.fit(x, X_val=np.vstack([x[:20], x[:20] + 3]), y_val=np.r_[np.zeros(20), np.ones(20)], run_dir=tmp_path)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["epoch"] == 1 and log[0]["reference_rows"] == 50 and log[0]["val_auroc"] == 1.0
    assert (tmp_path / "checkpoint.safetensors").is_file()

    def no_refit(self, x):
        raise AssertionError("a finished one-pass fit is not fitted again on resume")

    monkeypatch.setattr(MODELS["knn"], "fit_normal", no_refit)
    again = _detector("knn", row_scaling="none", max_reference=50, seed=9).fit(x, run_dir=tmp_path, resume=True)
    assert torch.equal(again.model_.reference, det.model_.reference)
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 1


# -- real data --------------------------------------------------------------------------------
def test_one_nn_l1_detects_kdd_attacks_vs_normal_traffic(kdd):
    """Issue 16: a 1-NN L1 distance gets AUROC 0.996 on the full scaled split; a 5k subset is far above chance."""
    train, test, labels = kdd
    assert auroc(labels, _detector("knn", k=1, metric="l1").fit(train).decision_function(test)) > 0.95


def test_cli_trains_scores_and_evaluates_a_baseline(tmp_path, digits, capsys):
    """``ganad train --model knn``, then ``score`` and ``evaluate`` on its run folder (in-process: fast)."""

    def ganad_cli(*args: str) -> str:
        assert cli.main(list(args)) == 0, capsys.readouterr().err
        return capsys.readouterr().out

    out = tmp_path / "knn"
    common = ["--dataset", "digits", "--class", "0", "--image-size", "16", "-q"]
    assert "AUROC" in ganad_cli("train", "--model", "knn", "--set", "k=3", *common, "--out", str(out))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "knn" and metrics["params"]["k"] == 3 and metrics["epochs_run"] == 1
    assert metrics["metrics"]["auroc"] > 0.9
    np.save(tmp_path / "x.npy", digits[0][:5])
    scored = ganad_cli("score", str(out), str(tmp_path / "x.npy"))
    assert len(scored.strip().splitlines()) == 6  # header + one line per input
    assert f"{metrics['metrics']['auroc']:.4f}" in ganad_cli("evaluate", str(out))


# -- grids and published numbers ---------------------------------------------------------------
GRIDS = sorted(p for p in (REPO / "configs").glob("*.yaml") if "budgets" in p.read_text())  # not single-run configs


@pytest.mark.parametrize("path", GRIDS, ids=lambda p: p.stem)
def test_every_shipped_grid_runs_the_baselines_at_every_budget(path):
    spec = load_grid(path)
    assert set(BASELINES) <= set(spec.grid["model"])
    for budget in spec.budgets:
        models = {t.config.model for t in expand(spec, budget)}
        assert set(BASELINES) <= models, (budget, models)


def test_survey_grid_uses_the_surveys_split_and_every_published_entry_names_its_split():
    spec = load_grid(REPO / "configs" / "survey_mnist.yaml")
    assert spec.base["protocol"] == "one-class-anomalous-ganomaly"
    assert published.PUBLISHED["survey-mnist"]["split"] == "one-class-anomalous-ganomaly"
    for key, entry in published.PUBLISHED.items():
        assert entry["split"] in PROTOCOLS, key
    for path in (REPO / "configs").glob("*.yaml"):
        text = path.read_text()
        if "budgets" not in text:
            continue
        spec = load_grid(path)
        for entry in published.lookup_all(spec.published):
            assert spec.base.get("protocol") == entry["split"], f"{path.name} runs another split than {entry}"


def test_a_grid_runs_the_baselines_into_the_store_and_the_report(tmp_path):
    from ganad.bench import run_grid, store
    from ganad.bench.report import write_report

    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "name: digits-baselines\n"
        "base: {dataset: digits, protocol: one-class-anomalous, image_size: 16, maps: 0}\n"
        "grid: {model: [knn, median-l1], class: [0], seed: [0]}\n"
        "budgets: {quick: {epochs: 100, max_train: 300}}\n"  # epochs mean nothing to a one-pass fit
    )
    root = tmp_path / "res"
    run_grid(load_grid(grid), "quick", root, progress=False)
    ok = {r["model"]: r for r in store.read(root) if r.get("status") == "ok"}
    assert set(ok) == {"knn", "median-l1"} and ok["knn"]["epochs_run"] == 1
    text = write_report(root, images=False).read_text()
    assert "knn" in text and "median-l1" in text
