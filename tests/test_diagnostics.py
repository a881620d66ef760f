"""Collapse diagnostics on real data: each warning fires on the failure it names and stays quiet on detection.

The digits are scikit-learn's 8x8 images (the ``digits`` fixture), scaled to
[-1, 1] as the image models see them; the model is a real GANomaly fitted
for one epoch, and the run is a real ``ganad train``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from ganad import GANomaly, diagnostics
from ganad.bench import load_grid, run_grid, store
from ganad.bench.report import CHANCE, write_report
from ganad.cli import main
from ganad.data import load_source, make_split

GRID = """
name: diag-report
description: one detector on digits, for the report's diagnostics and chance row
metrics: [auroc, auprc]
base: {dataset: digits, protocol: one-class-anomalous, image_size: 16, maps: 0}
grid:
  model: [ganomaly]
  class: [0]
  seed: [0]
budgets:
  quick: {epochs: 1, max_train: 300}
"""


def as_model_input(x: np.ndarray) -> np.ndarray:
    """uint8 images (N, 8, 8) -> float32 (N, 1, 8, 8) in [-1, 1], the range the image models see."""
    return (x[:, None].astype(np.float32) / 127.5 - 1).astype(np.float32)


@pytest.fixture(scope="module")
def fitted(digits) -> tuple[GANomaly, np.ndarray, np.ndarray, np.ndarray]:
    """A real GANomaly fitted one epoch on the digits that are not 0; the test set holds every digit."""
    torch.set_num_threads(1)
    x, y = digits
    normal = y != 0
    det = GANomaly(epochs=1, image_size=16, verbose=False, seed=0).fit(x[normal][:600])
    train = det.transform_input(x[normal][:600])
    test = det.transform_input(x[1000:1400])
    return det, train, test, y[normal][:600]


def test_a_score_equal_to_the_l1_norm_has_rho_one_and_a_warning(fitted):
    det, train, test, classes = fitted
    scores = np.abs(test.reshape(len(test), -1)).sum(1)
    diag = diagnostics.diagnose(det.model_, train, test, scores, train_classes=classes, seed=0)
    assert diag["correlation"]["l1"] == pytest.approx(1.0, abs=1e-4)  # float32 sums: a few ties differ
    kinds = dict(diagnostics.flags(diag))
    assert "trivial:l1" in kinds
    assert "Spearman ρ = 1.00 with ‖x‖₁" in kinds["trivial:l1"] and "L1 norm" in kinds["trivial:l1"]
    assert any("ρ = 1.00" in w for w in diagnostics.warnings(diag))
    json.dumps(diag)  # goes into metrics.json as it is


def test_negative_ink_is_a_trivial_statistic_too(digits):
    x, _ = digits
    imgs = as_model_input(x[:500])
    rho = diagnostics.correlations(imgs, -imgs.mean(axis=(1, 2, 3)), np.median(imgs, 0), image=True)["ink"]
    assert rho == pytest.approx(-1.0, abs=1e-4)
    assert "the negative of how much ink" in diagnostics.warnings({"correlation": {"ink": rho}})[0]


def test_a_constant_reconstruction_has_spread_ratio_zero_and_a_warning(digits):
    x, _ = digits
    imgs = as_model_input(x[:500])
    constant = np.broadcast_to(imgs.mean(0), imgs.shape)
    sp = diagnostics.spread(imgs, constant)
    assert sp["ratio"] == 0 and sp["total_ratio"] == 0
    assert [k for k, _ in diagnostics.flags({"spread": sp})] == ["spread"]
    assert diagnostics.spread(imgs, imgs)["ratio"] == pytest.approx(1.0), "x̂ = x spreads as x does"
    assert not diagnostics.flags({"spread": diagnostics.spread(imgs, imgs)})


def test_samples_all_from_one_class_cover_one_mode_in_k_and_warn(digits):
    x, y = digits
    imgs = as_model_input(x)
    modes = diagnostics.training_modes(imgs[:1000], y[:1000], [str(i) for i in range(10)], seed=0)
    assign, names, shares, source = modes
    assert source == "labels" and len(names) == 10 and shares.sum() == pytest.approx(1.0)
    threes = imgs[:1000][y[:1000] == 3]  # a generator that makes nothing but (training) threes
    cov = diagnostics.coverage(threes, assign, names, shares)
    assert cov["share"] == pytest.approx(1 / 10) and cov["covered"] == 1 and "3" not in cov["missing"]
    text = dict(diagnostics.flags({"coverage": {**cov, "mode_source": source, "generated_by": "sample"}}))
    assert "mode collapse: generated samples reach 1 of 10 training classes" in text["coverage"]
    everything = diagnostics.coverage(imgs[1000:], assign, names, shares)
    assert everything["share"] == 1.0 and not diagnostics.flags({"coverage": everything})


def test_without_labels_the_modes_are_seeded_k_means_clusters(digits):
    x, _ = digits
    imgs = as_model_input(x[:1000])
    assign, names, shares, source = diagnostics.training_modes(imgs, None, None, seed=0)
    assert source == "k-means" and len(names) == diagnostics.KMEANS_K
    one = np.repeat(imgs[:1], 50, axis=0)
    assert diagnostics.coverage(one, assign, names, shares)["share"] == pytest.approx(1 / diagnostics.KMEANS_K)
    again = diagnostics.training_modes(imgs, None, None, seed=0)[0]
    assert (assign(imgs) == again(imgs)).all(), "seeded: the same clusters every time"


def test_a_pca_reconstruction_score_detects_and_is_not_flagged_as_trivial():
    """PCA's reconstruction error on digits (class 7 anomalous) detects; no trivial statistic explains it."""
    split = make_split(load_source("digits"), "one-class-anomalous", 7, seed=0)
    tr, te = as_model_input(split.train.x[:, 0]), as_model_input(split.test.x[:, 0])
    pca = PCA(n_components=10, random_state=0).fit(tr.reshape(len(tr), -1))
    flat = te.reshape(len(te), -1)
    scores = ((flat - pca.inverse_transform(pca.transform(flat))) ** 2).sum(1)
    from ganad.metrics import auroc

    assert auroc(split.test.y, scores) > 0.9
    rhos = diagnostics.correlations(te, scores, np.median(tr.reshape(len(tr), -1), 0), image=True)
    assert all(abs(r) < diagnostics.TRIVIAL_RHO for r in rhos.values()), rhos
    assert not [k for k, _ in diagnostics.flags({"correlation": rhos}) if k.startswith("trivial")]


def test_splits_keep_the_source_class_of_every_training_sample():
    split = make_split(load_source("digits"), "one-class-anomalous", 1, seed=0)
    assert split.train.classes is not None and set(np.unique(split.train.classes)) == set(range(10)) - {1}
    assert split.class_names[int(split.train.classes[0])] == str(int(split.train.classes[0]))
    sub = split.train.subset(np.arange(5))
    assert (sub.classes == split.train.classes[:5]).all()


def test_a_train_run_writes_diagnostics_to_metrics_json_and_prints_them(tmp_path, capsys):
    out = tmp_path / "run"
    args = "train --dataset digits --protocol one-class-anomalous --class 1 --model egbad --epochs 1 --threads 1"
    args += " --image-size 16 --max-train 300"
    assert main([*args.split(), "--quiet", "--out", str(out)]) == 0  # the CLI in-process: no second torch import
    stdout = capsys.readouterr().out
    rec = json.loads((out / "metrics.json").read_text())
    diag = rec["diagnostics"]
    assert set(diag["correlation"]) == {"l1", "l1_median", "ink"}
    assert diag["spread"]["ratio"] >= 0 and diag["spread"]["n"] == diag["n_test"]
    assert diag["coverage"]["mode_source"] == "labels" and diag["coverage"]["modes"] == 9, "digits but 1"
    assert diag["coverage"]["generated_by"] in ("sample", "reconstruction")
    assert diag["seconds"] < 5
    assert rec["warnings"] == diagnostics.warnings(diag)
    assert "  diagnostics: spread ratio" in stdout
    assert sum(line.startswith("  WARNING: ") for line in stdout.splitlines()) == len(rec["warnings"])


def test_the_report_shows_the_chance_row_diagnostics_and_warnings(fitted, tmp_path, digits):
    base = tmp_path / "g"
    base.mkdir()
    (base / "grid.yaml").write_text(GRID)
    root = base / "res"
    run_grid(load_grid(base / "grid.yaml"), "quick", root, progress=False)
    rec = json.loads((root / store.RESULTS).read_text().splitlines()[0])
    assert rec["diagnostics"]["correlation"] and "warnings" in rec, "the store keeps the run's diagnostics"
    # a second detector whose score is ‖x‖₁ (real diagnostics of that score), and an old record without any
    det, train, test, classes = fitted
    l1 = diagnostics.diagnose(
        det.model_, train, test, np.abs(test.reshape(len(test), -1)).sum(1), train_classes=classes
    )
    trivial = {**rec, "trial": "l1-trial", "model": "egbad", "diagnostics": l1, "warnings": diagnostics.warnings(l1)}
    old = {k: v for k, v in rec.items() if k not in ("diagnostics", "warnings")}
    old.update(trial="old-trial", model="anogan")
    shutil.rmtree(root / "report", ignore_errors=True)
    with open(root / store.RESULTS, "a") as f:
        f.write(json.dumps(trivial) + "\n" + json.dumps(old) + "\n")
    md = (write_report(root, images=False).parent / "report.md").read_text()
    share = rec["metrics"]["anomaly_ratio"]
    chance = next(x for x in md.splitlines() if x.startswith(f"| {CHANCE} | — |"))
    assert chance.split("|")[3].strip() == "0.500" and chance.split("|")[4].strip() == f"{share:.3f}"
    assert "### Collapse diagnostics" in md
    assert "- egbad: 1 of 1 trials. score is a trivial statistic: Spearman ρ = 1.00 with ‖x‖₁" in md
    assert "1 trial(s) have no diagnostics" in md
    row = next(x for x in md.splitlines() if x.startswith("| anogan | 0 of 1 |"))
    assert row.rstrip(" |").endswith("–")
    html = (root / "report" / "report.html").read_text()
    assert "class='chance'" in html and "ul class='warnings'" in html


def test_kdd_sections_show_best_f1_beside_f1_and_explain_neptune(tmp_path):
    """A KDD section (records relabelled from a digits store: the layout, not the numbers, is under test)."""
    root = tmp_path / "res"
    root.mkdir()
    rec = {
        "trial": "t",
        "grid": "",
        "budget": "",
        "status": "ok",
        "model": "ganomaly",
        "dataset": "kdd99",
        "protocol": "kdd",
        "cls": None,
        "seed": 0,
        "threshold_rule": "percentile:80",
        "metrics": {"auroc": 0.7, "auprc": 0.3, "best_f1": 0.6, "f1": 0.01, "anomaly_ratio": 0.2},
    }
    (root / store.RESULTS).write_text(json.dumps(rec) + "\n")
    md = (write_report(root, images=False).parent / "report.md").read_text()
    head = next(x for x in md.splitlines() if x.startswith("| model | trials |"))
    assert [c.strip() for c in head.strip("|").split("|")][2:6] == ["auroc", "auprc", "best_f1", "f1"]
    chance = next(x for x in md.splitlines() if x.startswith(f"| {CHANCE} |"))
    assert [c.strip() for c in chance.strip("|").split("|")][2:6] == ["0.500", "0.200", "0.333", "0.200"]
    assert "neptune attacks, normal here, are 21.7 % of the test rows" in md


def test_every_threshold_is_declared_once_in_the_module():
    src = Path(diagnostics.__file__).read_text()
    for name in ("TRIVIAL_RHO", "MIN_SPREAD", "MIN_COVERAGE"):
        assert src.count(f"{name} =") == 1
