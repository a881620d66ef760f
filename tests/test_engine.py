"""ganad.engine: diverging GANs stop cleanly, naming the loss term, and keep the last good checkpoint
(docs/guarantees.md, "Diverging GANs")."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from helpers import one_line_error

import ganad
from ganad import checkpoint
from ganad.config import RunConfig
from ganad.errors import TrainingError
from ganad.run import FAILED, METRICS, train

SRC = Path(ganad.__file__).parent


# == 5. diverging GANs =======================================================================
def test_diverging_gan_stops_with_the_loss_term_and_keeps_no_nan_metrics(tmp_path):
    cfg = RunConfig(dataset="digits", cls=0, image_size=16, epochs=3, max_train=128, params={"lr": 1e12}, maps=0)
    with pytest.raises(TrainingError, match=r"loss '\w+' became (nan|inf) at epoch 1"):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / METRICS).exists()
    assert json.loads((tmp_path / "run" / FAILED).read_text())["status"] == "failed"


def _lr_1e7(**overrides) -> RunConfig:
    """Three epochs of two batches at lr 1e7 on the digits: the weights blow up within a few steps."""
    base = dict(dataset="digits", cls=0, image_size=16, epochs=3, batch_size=32, max_train=64, max_test=64)
    return RunConfig(**base, val_fraction=0.0, params={"lr": 1e7}, maps=0, **overrides)


def test_divergence_after_a_good_epoch_keeps_that_epochs_checkpoint(tmp_path):
    """EGBAD at lr 1e7: epoch 1 ends finite, a loss turns NaN in epoch 2; epoch 1's checkpoint is kept."""
    out = tmp_path / "run"
    with pytest.raises(TrainingError) as e:
        train(_lr_1e7(model="egbad"), out, progress=False)
    m = re.search(r"loss '(\w+)' became (nan|inf) at epoch (\d+)", str(e.value))
    assert m, str(e.value)
    epoch = int(m.group(3))
    assert epoch >= 2, "diverged in the first epoch: nothing to keep"
    meta = checkpoint.read_meta(out / "checkpoint.safetensors")
    assert meta["fit"]["state"]["epoch"] == epoch - 1
    weights = checkpoint.read_tensors(out / "checkpoint.safetensors", meta["tensors_sha256"])
    assert all(torch.isfinite(v).all() for k, v in weights.items() if k.startswith("model."))
    assert json.loads((out / FAILED).read_text())["error"] == str(e.value)
    assert not (out / METRICS).exists() and not (out / "model.safetensors").exists()


def test_nan_scores_from_finite_losses_fail_the_run_instead_of_a_traceback(tmp_path):
    """A step can blow the weights up while its own loss is finite: the scores then are NaN."""
    args = ["--dataset", "digits", "--class", "0", "--image-size", "16", "--max-train", "32", "--batch-size", "32"]
    args += ["--max-test", "64", "--maps", "0"]
    err = one_line_error("train", *args, "--epochs", "3", "--set", "lr=2e6", "--out", str(tmp_path / "run"), "-q")
    assert "NaN or inf" in err
    assert (tmp_path / "run" / FAILED).is_file() and not (tmp_path / "run" / METRICS).exists()


def test_weights_that_went_non_finite_are_never_kept_as_the_last_good_checkpoint(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(TrainingError):
        train(_lr_1e7(), out, progress=False)
    if (out / "checkpoint.safetensors").is_file():
        weights = checkpoint.read_tensors(out / "checkpoint.safetensors")
        assert all(torch.isfinite(v).all() for k, v in weights.items() if k.startswith("model."))
