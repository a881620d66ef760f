"""ganad.export: one ONNX / TorchScript file that scores raw input as ``ganad score`` does (issue 20)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from test_cli import in_process, in_process_error

import ganad
from ganad.data import load_source, make_split
from ganad.errors import ConfigError, RunExistsError


@pytest.fixture(scope="module")
def image_detector(digits):
    x, y = digits
    det = ganad.GANomaly(epochs=2, nz=8, width=8, batch_size=32, verbose=False, threads=1)
    return det.fit(x[y == 0][:150])


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_onnx_scores_and_maps_raw_uint8_images_as_ganad_does(image_detector, digits, tmp_path):
    x, _ = digits
    det = image_detector
    path = det.export(tmp_path / "m.onnx")
    score, amap = _session(path).run(None, {"input": x[:300][:, None]})  # uint8 (N, 1, 8, 8), as read
    np.testing.assert_allclose(score, det.decision_function(x[:300]), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(amap, det.anomaly_map(x[:300]), rtol=1e-4, atol=1e-4)
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}
    assert meta["threshold"] == det.threshold_ and meta["threshold_rule"] == det.threshold_rule_
    assert meta["input"]["dtype"] == "uint8" and meta["input"]["shape"] == ["N", 1, 8, 8]
    assert ((score >= meta["threshold"]).astype(int) == det.predict(x[:300])).all()


def test_onnx_scores_raw_rows_with_egbads_weight_average_baked_in(data_dir, tmp_path):
    split = make_split(load_source("kdd99", data_dir=str(data_dir), download=False), "kdd", None, seed=0)
    pick = np.random.default_rng(0).choice(len(split.test), 3000, replace=False)
    rows = split.test.x[pick].astype(np.float32)  # raw KDD rows: normal traffic and attacks
    det = ganad.EGBAD(epochs=1, batch_size=50, verbose=False, threads=1, ema_decay=0.9).fit(rows[:2000])
    assert det.model_.ema is not None  # the scored weights are the average, not the trained ones
    (score, *_) = _session(det.export(tmp_path / "e.onnx")).run(None, {"input": rows[2000:]})
    np.testing.assert_allclose(score, det.decision_function(rows[2000:]), rtol=1e-4, atol=1e-4)


def test_torchscript_carries_the_threshold_and_scores_alike(digits, tmp_path):
    x, y = digits
    det = ganad.DualAdversarialAE(epochs=1, nz=8, width=8, batch_size=32, verbose=False, threads=1)
    det.fit(x[y == 1][:150])
    extra = {"ganad.json": ""}
    module = torch.jit.load(str(det.export(tmp_path / "d.pt", "torchscript")), _extra_files=extra)
    score = module(torch.from_numpy(x[:200][:, None]))[0].numpy()
    np.testing.assert_allclose(score, det.decision_function(x[:200]), rtol=1e-4, atol=1e-4)
    assert json.loads(extra["ganad.json"])["threshold"] == det.threshold_


def test_ganad_export_writes_next_to_the_run_and_never_over_a_file(image_detector, tmp_path, capsys):
    image_detector.save(tmp_path / "run")
    code, out, _ = in_process(capsys, "export", str(tmp_path / "run"))
    assert code == 0 and (tmp_path / "run" / "model.onnx").is_file() and "threshold" in out
    err = in_process_error(capsys, "export", str(tmp_path / "run"))
    assert "model.onnx exists; pass --overwrite" in err


def test_a_detector_without_a_single_graph_is_refused_with_why(digits, tmp_path):
    x, y = digits
    rows = x.reshape(len(x), -1)[y == 0]
    with pytest.raises(ConfigError, match="knn cannot be exported: its score reads the stored training rows"):
        ganad.KNNBaseline(verbose=False).fit(rows).export(tmp_path / "k.onnx")
    with pytest.raises(ConfigError, match="anogan cannot be exported: its score is a search over z"):
        ganad.AnoGAN(epochs=1, nz=4, width=8, batch_size=32, verbose=False).fit(x[y == 0][:64]).export(tmp_path / "a")
    (tmp_path / "p.onnx").write_text("mine")
    with pytest.raises(RunExistsError):
        ganad.PCABaseline(verbose=False).fit(rows).export(tmp_path / "p.onnx")
    assert (tmp_path / "p.onnx").read_text() == "mine"


def test_anogan_exports_its_generator_and_discriminator_for_a_search_outside_ganad(digits, tmp_path, capsys):
    """Issue 20: AnoGAN's score is a latent search, so `ganad export` hands over G and D (with EMA
    weights baked in, as ganad scores) and says the search needs ganad; both run in onnxruntime and
    match the torch nets within 1e-4, and their metadata carries the search settings."""
    x, y = digits
    det = ganad.AnoGAN(epochs=1, nz=4, width=8, batch_size=32, ema_decay=0.9, verbose=False, threads=1)
    det.fit(x[y == 0][:64])
    det.save(tmp_path / "run")
    code, out, err = in_process(capsys, "export", str(tmp_path / "run"))
    assert code == 0, err
    gen_path, disc_path = tmp_path / "run" / "model.generator.onnx", tmp_path / "run" / "model.discriminator.onnx"
    assert str(gen_path) in out and str(disc_path) in out and "latent search" in out
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    samples = det.transform_input(x[y == 3][:5])
    model = det.model_
    with torch.no_grad(), model.averaged_weights():
        want_g = model.generator(z).numpy()
        want_logit, want_feat = (t.numpy() for t in model.netd(torch.from_numpy(samples)))
    (got_g,) = _session(gen_path).run(None, {"z": z.numpy()})
    got_logit, got_feat = _session(disc_path).run(None, {"sample": samples})
    np.testing.assert_allclose(got_g, want_g, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got_logit, want_logit, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got_feat, want_feat, rtol=1e-4, atol=1e-4)
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(gen_path)).metadata_props}
    assert meta["part"] == "generator" and meta["hparams"]["search_steps"] == 500
    assert meta["threshold"] == det.threshold_
    err = in_process_error(capsys, "export", str(tmp_path / "run"))
    assert "model.generator.onnx exists; pass --overwrite" in err
