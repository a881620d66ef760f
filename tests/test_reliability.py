"""Guarantees: bad input gives ganad's own errors, checkpoints never run code, divergence is caught."""

from __future__ import annotations

import io
import json
import pickle
import re
import string
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import ganad
from ganad import checkpoint
from ganad.config import RunConfig
from ganad.data import load_csv, read_image_files
from ganad.errors import CheckpointError, DataError, TrainingError
from ganad.run import FAILED, METRICS, train

SRC = Path(ganad.__file__).parent


@pytest.fixture(scope="module")
def saved(tmp_path_factory, digits):
    x, y = digits
    det = ganad.GANomaly(epochs=2, batch_size=32, image_size=16, verbose=False).fit(x[y == 3][:100])
    path = tmp_path_factory.mktemp("det") / "m"
    det.save(path)
    return det, path, x[:20]


def test_loading_never_unpickles(saved, monkeypatch):
    """With every unpickling entry point booby-trapped, loading and scoring still work."""
    det, path, x = saved

    def trap(*a, **k):
        raise AssertionError("pickle was used")

    monkeypatch.setattr(pickle, "load", trap)
    monkeypatch.setattr(pickle, "loads", trap)
    monkeypatch.setattr(pickle, "Unpickler", trap)
    monkeypatch.setattr(torch, "load", trap)
    back = ganad.load(path)
    np.testing.assert_array_equal(back.decision_function(x), det.decision_function(x))


def test_no_pickle_in_the_source():
    for f in SRC.rglob("*.py"):
        text = f.read_text()
        assert not re.search(r"^\s*(import pickle|from pickle)|torch\.load\(|allow_pickle=True", text, re.M), f


def test_checkpoint_from_another_version_is_refused(saved, tmp_path):
    _, path, _ = saved
    copy = tmp_path / "m"
    copy.mkdir()
    (copy / "model.safetensors").write_bytes((path / "model.safetensors").read_bytes())
    meta = json.loads((path / "model.json").read_text())
    meta["ganad_version"] = "9.0.0"
    (copy / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"written by ganad 9\.0\.0"):
        ganad.load(copy)


def test_checkpoint_of_another_model_is_refused(saved):
    _, path, _ = saved
    with pytest.raises(CheckpointError, match="'ganomaly' detector, not 'anogan'"):
        ganad.load(path, expect_model="anogan")


@pytest.mark.parametrize("cut", [0, 8, 100, -50])
def test_truncated_weights_are_refused(saved, tmp_path, cut):
    _, path, _ = saved
    copy = tmp_path / "m"
    copy.mkdir()
    data = (path / "model.safetensors").read_bytes()
    (copy / "model.safetensors").write_bytes(data[:cut])
    (copy / "model.json").write_text((path / "model.json").read_text())
    with pytest.raises(CheckpointError):
        ganad.load(copy)


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    checkpoint.atomic_write_json(target, {"a": 1})

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temp file left


def test_diverging_gan_stops_with_the_loss_term_and_keeps_no_nan_metrics(tmp_path):
    cfg = RunConfig(dataset="digits", cls=0, image_size=16, epochs=3, params={"lr": 1e12}, maps=0)
    with pytest.raises(TrainingError, match=r"loss '\w+' became (nan|inf) at epoch 1"):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / METRICS).exists()
    assert json.loads((tmp_path / "run" / FAILED).read_text())["status"] == "failed"


# -- property-based: malformed CSV rows and image bytes ------------------------------------
cell = st.one_of(
    st.integers(-1000, 1000).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(string.ascii_letters + string.digits + " .-", max_size=6),
    st.just(""),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.lists(cell, min_size=1, max_size=5), min_size=1, max_size=8),
    header=st.lists(st.sampled_from(["a", "b", "c", "label", "x"]), min_size=1, max_size=5),
)
def test_any_csv_loads_or_raises_data_error_naming_the_file(tmp_path, rows, header):
    p = tmp_path / "gen.csv"
    p.write_text("\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n")
    try:
        src = load_csv(p, "label", "bad")
    except DataError as e:
        assert "gen.csv" in str(e)
    else:
        assert np.isfinite(src.train.x).all() and len(src.train.x) == len(src.train.y)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 400), flip=st.integers(0, 399), value=st.integers(0, 255))
def test_corrupt_image_bytes_raise_data_error_naming_the_file(tmp_path, cut, flip, value):
    buf = io.BytesIO()
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    if flip < len(data):
        data[flip] = value
    p = tmp_path / "img.png"
    p.write_bytes(bytes(data[: max(cut, 0)] if cut < len(data) else data))
    try:
        arr = read_image_files([p])
    except DataError as e:
        assert "img.png" in str(e)
    else:
        assert arr.dtype == np.uint8 and arr.shape[0] == 1
