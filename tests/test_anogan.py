"""AnoGAN's latent search as the official KDD baseline runs it (``gan/run_kdd.py``), batch-independent.

A fresh starting z per sample, seeded by the sample itself, and the step-size
schedule 0.01 -> 0.001 (step 300) -> 0.0005 (step 400) for Γ = 500.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch.optim.optimizer import register_optimizer_step_pre_hook

from ganad.data.types import InputSpec
from ganad.errors import ConfigError
from ganad.models import AnoGAN

ROWS = InputSpec("tabular", (64,))


@pytest.fixture(scope="module")
def model_and_rows() -> tuple[AnoGAN, torch.Tensor]:
    """An AnoGAN trained for 30 steps on scikit-learn's digits as 64-feature rows, and 6 held-out rows."""
    x = torch.as_tensor(load_digits().data / 16.0, dtype=torch.float32)
    torch.manual_seed(0)
    model = AnoGAN(ROWS, lr=1e-3, ema_decay=0.9)
    for i in range(30):
        model.train_step(x[i * 40 : (i + 1) * 40], x[1200 + i * 10 : 1200 + i * 10 + 40])
    return model.eval(), x[-6:]


def test_each_sample_starts_from_its_own_z(model_and_rows):
    model, x = model_and_rows
    z = model.start_z(x)
    assert len({tuple(r.tolist()) for r in z}) == len(x), "different samples must not share a start"
    assert z.abs().max() <= 2  # truncated normal, as TF's truncated_normal_initializer
    torch.testing.assert_close(model.start_z(x[2:3]), z[2:3], rtol=0, atol=0)
    model.hparams["search_seed"] = 1
    try:
        assert not torch.equal(model.start_z(x), z), "search_seed changes the starts"
    finally:
        model.hparams["search_seed"] = 0


def test_a_samples_score_does_not_depend_on_its_batch(model_and_rows):
    model, x = model_and_rows
    other = torch.rand(5, 64)
    alone = model.latent_search(x[3:4], steps=40)[1]
    in_batch = model.latent_search(torch.cat([other[:2], x[3:4], other[2:]]), steps=40)[1][2:3]
    reordered = model.latent_search(x.flip(0), steps=40)[1].flip(0)
    batched = model.latent_search(x, steps=40)[1]
    torch.testing.assert_close(in_batch, alone, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(reordered, batched, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(batched[3:4], alone, rtol=1e-6, atol=1e-6)


def test_step_size_schedule_has_the_official_milestones(model_and_rows):
    model, x = model_and_rows
    at = [model.search_lr_at(k, 500) for k in range(500)]
    # tf.train.piecewise_constant(step, [300, 400], [0.01, 0.001, 0.0005]): values[0] while step <= 300
    assert at[:301] == [0.01] * 301 and at[301:401] == [pytest.approx(0.001)] * 100
    assert at[401:] == [pytest.approx(0.0005)] * 99
    assert model.search_lr_at(30, 50) == 0.01 and model.search_lr_at(31, 50) == pytest.approx(0.001)
    assert model.search_lr_at(41, 50) == pytest.approx(0.0005)  # milestones scale with Γ

    seen: list[float] = []

    def record(opt: torch.optim.Optimizer, *_: object) -> None:
        seen.append(opt.param_groups[0]["lr"])

    handle = register_optimizer_step_pre_hook(record)
    try:
        model.latent_search(x, steps=10)
    finally:
        handle.remove()
    assert seen == pytest.approx([0.01] * 7 + [0.001] * 2 + [0.0005])  # boundaries round(6), round(8)


def test_sample_draws_fresh_latents_and_ema_weights_score(model_and_rows):
    model, _ = model_and_rows
    assert model.sample(7, seed=0).shape == (7, 64)
    assert torch.equal(model.sample(7, seed=0), model.sample(7, seed=0))
    assert not torch.equal(model.sample(7, seed=0), model.sample(7, seed=1))
    raw = {k: v.clone() for k, v in model.generator.state_dict().items()}
    with model.averaged_weights():
        ema = {k: v.clone() for k, v in model.generator.state_dict().items()}
        sampled_ema = model.generator(torch.randn(7, model.nz, generator=torch.Generator().manual_seed(0)))
    assert any(not torch.equal(raw[k], ema[k]) for k in raw)
    torch.testing.assert_close(model.sample(7, seed=0), sampled_ema, rtol=0, atol=0)
    assert all(torch.equal(v, raw[k]) for k, v in model.generator.state_dict().items())


def test_row_options_build_the_official_discriminator():
    model = AnoGAN(ROWS, d_layers="256-128-128", leaky_slope=0.1, init="xavier")
    widths = [m.out_features for m in model.netd.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [256, 128, 128, 1] and model.nz == 32
    assert {m.negative_slope for m in model.netd.modules() if isinstance(m, torch.nn.LeakyReLU)} == {0.1}
    assert all(torch.all(m.bias == 0) for m in model.netd.modules() if isinstance(m, torch.nn.Linear))
    with pytest.raises(ConfigError):
        AnoGAN(ROWS, search_start="random")
    with pytest.raises(ConfigError):
        AnoGAN(ROWS, d_layers="wide")
    assert np.isfinite(AnoGAN(ROWS, gen_loss="bce").train_step(torch.rand(8, 64), torch.rand(8, 64))["g"])
    # rows train G by feature matching (what restored mode coverage on KDD), images by the paper's BCE
    assert AnoGAN(ROWS).gen_loss == "fm" and AnoGAN(InputSpec("image", (1, 16, 16)), width=8).gen_loss == "bce"
