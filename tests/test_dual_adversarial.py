"""The dual adversarial autoencoders (Chen et al. 2020) do what issue 16 says the paper writes.

Each test fails on the model as it was before issue 16: the centre from the
first batch, L_zrec against G's own encoder, mean-reduced image terms and a
score from G.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import ganad
from ganad import engine
from ganad.data import Preprocessor, load_source, make_split
from ganad.data.types import InputSpec
from ganad.errors import ConfigError
from ganad.metrics import auroc
from ganad.models import DualAdversarialAE

IMAGE = InputSpec("image", (1, 16, 16))


@pytest.fixture(scope="module")
def kdd(data_dir):
    """Min-max scaled KDD rows (EGBAD's protocol, seeded): 1,000 training rows, 1,000 test rows and labels."""
    s = make_split(load_source("kdd99", data_dir=str(data_dir), download=False), "kdd", seed=0, val_fraction=0.0)
    rng = np.random.default_rng(0)
    train = s.train.x[rng.choice(len(s.train), 1000, replace=False)]
    te = rng.choice(len(s.test), 1000, replace=False)
    pre = Preprocessor.fit(train, "tabular")
    return pre.transform(train), pre.transform(s.test.x[te]), s.test.y[te], pre.spec


def _model(spec: InputSpec, **hp) -> DualAdversarialAE:
    torch.manual_seed(0)
    return DualAdversarialAE(spec, **hp).train()


def _encode_all(model: DualAdversarialAE, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model.generator.encoder(x[i : i + 100]) for i in range(0, len(x), 100)])


def test_centre_comes_from_a_pass_over_all_training_rows_before_training(kdd):
    train, _, _, spec = kdd
    model = _model(spec)
    x = torch.as_tensor(train)
    expected = _encode_all(model, x).mean(0)  # the initial encoder over every row, not one batch
    first_batch = _encode_all(model, x[:50]).mean(0)
    engine.fit(model, train, engine.TrainOptions(epochs=1, batch_size=50, device="cpu", progress=False))
    eps = model.hparams["centre_eps"]
    far = expected.abs() >= eps  # coordinates Deep SVDD leaves alone; the others are moved to +-eps
    torch.testing.assert_close(model.centre[far], expected[far], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(model.centre[far], first_batch[far], rtol=1e-3, atol=1e-4)
    assert (model.centre.abs() >= eps - 1e-7).all()
    assert torch.equal(torch.sign(model.centre[~far]), torch.where(expected[~far] < 0, -1.0, 1.0))


def test_prepare_leaves_batch_norm_statistics_untouched():
    model = _model(IMAGE, width=8)
    before = {k: v.clone() for k, v in model.state_dict().items() if k != "centre" and k != "centre_set"}
    model.prepare(torch.rand(40, *IMAGE.shape) * 2 - 1, batch_size=16)
    after = model.state_dict()
    assert bool(model.centre_set)
    assert all(torch.equal(v, after[k]) for k, v in before.items())


def test_codes_do_not_collapse_onto_the_centre(kdd):
    """Before issue 16 the centre loss fell to 0.0014: every code on c. A bias-free encoder and an eps-clamped c."""
    train, _, _, spec = kdd
    model = _model(spec)
    assert all(m.bias is None for m in model.generator.encoder.modules() if isinstance(m, torch.nn.Linear))
    res = engine.fit(model, train, engine.TrainOptions(epochs=3, batch_size=50, device="cpu", progress=False))
    z = _encode_all(model, torch.as_tensor(train))
    assert res.history[-1]["centre"] > 0.1
    assert (z - model.centre).pow(2).sum(1).mean() > 0.1
    assert z.std(0).mean() > 1e-2, "codes vary from row to row"


def test_latent_reconstruction_compares_g_with_the_dual_encoder_and_trains_it(kdd):
    train, _, _, spec = kdd
    x = torch.as_tensor(train[:50])
    model = _model(spec)
    with torch.no_grad():
        x_hat, z = copy.deepcopy(model).generator(x)
        expected = torch.linalg.vector_norm(z - model.dual.encoder(x_hat), dim=1).mean()
    grads = {}
    for w_z in (1.0, 0.0):
        m = copy.deepcopy(model)
        m.hparams["w_z"] = w_z
        opt = m.optimizers["dual"]
        params = [p for group in opt.param_groups for p in group["params"]]
        enc = {id(p) for p in m.dual.encoder.parameters()}
        hook = opt.register_step_pre_hook(
            lambda *_, params=params, enc=enc, w_z=w_z: grads.__setitem__(
                w_z, torch.cat([p.grad.flatten() for p in params if id(p) in enc])
            )
        )
        losses = m.train_step(x)
        hook.remove()
        if w_z:
            torch.testing.assert_close(torch.tensor(losses["latent_rec"]), expected)
    assert not torch.allclose(grads[1.0], grads[0.0]), "L_zrec's gradient reaches the dual encoder G_e'"


def test_image_term_is_a_per_sample_l1_sum(kdd):
    train, _, _, spec = kdd
    x = torch.as_tensor(train[:50])
    model = _model(spec)
    with torch.no_grad():
        expected = (x - model.generator(x)[0]).abs().sum(1).mean()  # sum over 121 columns, mean over rows
    losses = model.train_step(x)
    torch.testing.assert_close(torch.tensor(losses["image_rec"]), expected)
    assert losses["image_rec"] > 10 * (expected / x.shape[1])  # far from the old mean over elements


def test_score_is_the_dual_autoencoders_error_by_default_and_g_on_request(kdd):
    train, _, _, spec = kdd
    x = torch.as_tensor(train[:20])
    model = _model(spec).eval()
    with torch.no_grad():
        x_hat = model.generator(x)[0]
        dual = (x - model.dual(x_hat)[0]).abs().sum(1)
        gen = (x - x_hat).abs().sum(1)
    torch.testing.assert_close(model.score(x), dual)
    model.hparams["score_with"] = "generator"
    torch.testing.assert_close(model.score(x), gen)
    with pytest.raises(ConfigError, match="score_with"):
        DualAdversarialAE(spec, score_with="d-prime")


def test_dual_game_stays_bounded(kdd):
    """With a fixed k, D' pushed ||x' - D'(x')|| to 1e5 per row on KDD; BEGAN's control keeps k_t in [0, k]."""
    train, _, _, spec = kdd
    model = _model(spec)
    res = engine.fit(model, train, engine.TrainOptions(epochs=3, batch_size=50, device="cpu", progress=False))
    assert 0.0 <= float(model.k_t) <= model.hparams["k"]
    assert all(r["dual_fake"] < 100 for r in res.history)


def test_short_real_run_gives_finite_scores_that_detect(kdd):
    train, test, labels, _ = kdd
    """400 steps on 1,000 scaled rows: AUROC 0.98 here (at w_i = 1, G's reconstructions collapse onto one row)."""
    det = ganad.DualAdversarialAE(epochs=10, batch_size=25, seed=0, verbose=False).fit(train)
    scores = det.decision_function(test)
    assert np.isfinite(scores).all()
    assert auroc(labels, scores) > 0.9
