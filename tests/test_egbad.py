"""EGBAD as the official KDD code runs it: EMA weights for scoring, two shuffles, Xavier init, slope 0.1.

Reference: houssamzenati/Efficient-GAN-Anomaly-Detection, ``bigan/run_kdd.py``,
``bigan/kdd_utilities.py`` and ``bigan/run_mnist.py``.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

import ganad
from ganad import engine
from ganad.data import Preprocessor, load_source, make_split
from ganad.data.types import InputSpec
from ganad.errors import ConfigError
from ganad.models import EGBAD

ROWS = InputSpec("tabular", (121,))


@pytest.fixture(scope="module")
def kdd_rows(data_dir) -> np.ndarray:
    """1,000 min-max scaled KDD training rows (EGBAD's protocol: attack rows)."""
    s = make_split(load_source("kdd99", data_dir=str(data_dir), download=False), "kdd", None, seed=0)
    rows = s.train.x[np.random.default_rng(0).choice(len(s.train), 1000, replace=False)]
    return Preprocessor.fit(rows, "tabular").transform(rows).astype(np.float32)


def _trained(x: torch.Tensor, steps: int = 10, **kw) -> EGBAD:
    torch.manual_seed(0)
    model = EGBAD(ROWS, **{"lr": 1e-3, "ema_decay": 0.9, **kw})
    model.train()
    for i in range(steps):
        model.train_step(x[i * 50 : (i + 1) * 50], x[500 + i * 50 : 500 + (i + 1) * 50])
    return model


def _nets(model: EGBAD) -> dict[str, nn.Module]:
    return {"encoder": model.encoder, "generator": model.generator, "netd": model.netd}


def test_row_preset_is_the_official_kdd_code():
    """kdd_utilities.py: latent 32, Xavier kernels and zero biases, LeakyReLU 0.1, dropout 0.2 in D only; EMA 0.9999."""
    torch.manual_seed(0)
    model = EGBAD(ROWS)
    assert model.nz == 32 and model.ema.decay == 0.9999 and model.hparams["lr"] == 1e-5
    slopes = {m.negative_slope for net in _nets(model).values() for m in net.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.1}
    dropouts = {name: [m.p for m in net.modules() if isinstance(m, nn.Dropout)] for name, net in _nets(model).items()}
    assert dropouts["encoder"] == [] and dropouts["generator"] == [] and set(dropouts["netd"]) == {0.2}
    for net in _nets(model).values():
        for m in net.modules():
            if isinstance(m, nn.Linear):
                fan_out, fan_in = m.weight.shape
                bound = math.sqrt(6 / (fan_in + fan_out))  # Glorot & Bengio's uniform limit
                assert torch.all(m.bias == 0)
                assert m.weight.abs().max() <= bound
                if m.weight.numel() >= 1000:  # uniform on [-b, b]: std b / sqrt(3)
                    assert m.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)


def test_image_preset_keeps_the_mnist_settings():
    model = EGBAD(InputSpec("image", (1, 16, 16)), width=8)
    assert model.nz == 200 and model.ema.decay == 0.999  # run_mnist.py: ema_decay = 0.999
    with pytest.raises(ConfigError):
        EGBAD(InputSpec("image", (1, 16, 16)), width=8, init="xavier")
    assert EGBAD(ROWS, ema_decay=0).ema is None  # 0 switches it off
    with pytest.raises(ConfigError):
        EGBAD(ROWS, ema_decay=1.0)  # an average that never moves


def test_ema_is_the_bias_corrected_average_of_the_trained_weights(kdd_rows):
    x = torch.as_tensor(kdd_rows)
    torch.manual_seed(0)
    model = EGBAD(ROWS, lr=1e-3, ema_decay=0.9)
    history = []
    for i in range(4):
        model.train_step(x[i * 50 : (i + 1) * 50], x[500 + i * 50 : 500 + (i + 1) * 50])
        nets = _nets(model).items()
        history.append({f"{n}.{k}": v.detach().clone() for n, net in nets for k, v in net.named_parameters()})
    avg = model.ema.averaged()
    d, t = 0.9, len(history)
    for name in avg:  # Σ d^(t-i) w_i / Σ d^(t-i): the trained weights only, no trace of the init
        want = sum(d ** (t - 1 - i) * h[name] for i, h in enumerate(history)) / sum(d ** (t - 1 - i) for i in range(t))
        torch.testing.assert_close(avg[name], want, rtol=1e-5, atol=1e-7)
    raw = history[-1]
    assert any(not torch.allclose(avg[k], raw[k]) for k in avg), "the average must differ from the last weights"


def test_scores_reconstructions_and_samples_use_the_ema_weights(kdd_rows):
    x = torch.as_tensor(kdd_rows)
    model = _trained(x).eval()
    raw_state = {k: v.clone() for k, v in model.state_dict().items()}
    twin = copy.deepcopy(model)  # the same nets with the averaged weights loaded as ordinary weights
    avg = model.ema.averaged()
    with torch.no_grad():
        for name, net in _nets(twin).items():
            for k, p in net.named_parameters():
                p.copy_(avg[f"{name}.{k}"])
    twin.ema = None
    rows = x[:200]
    torch.testing.assert_close(model.score(rows), twin.score(rows), rtol=0, atol=0)
    torch.testing.assert_close(model.reconstruct(rows), twin.reconstruct(rows), rtol=0, atol=0)
    torch.testing.assert_close(model.sample(16, seed=3), twin.sample(16, seed=3), rtol=0, atol=0)
    raw = copy.deepcopy(model)
    raw.ema = None
    assert not torch.allclose(model.score(rows), raw.score(rows)), "scores with raw weights must differ"
    # scoring swaps the averages in and the trained weights back, bit for bit
    assert all(torch.equal(v, raw_state[k]) for k, v in model.state_dict().items())
    assert torch.equal(model.sample(8, seed=1), model.sample(8, seed=1))
    assert model.sample(8, seed=1).shape == (8, 121) and not torch.equal(model.sample(8, 1), model.sample(8, 2))


def test_d_step_and_generator_encoder_step_see_different_batches_and_z(kdd_rows):
    """run_kdd.py: D on trainx[t], G and E on trainx_copy[t] (another permutation), each sess.run its own z."""
    x = torch.as_tensor(kdd_rows)
    torch.manual_seed(0)
    model = EGBAD(ROWS)
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []
    handle = model.netd.register_forward_pre_hook(lambda _m, args: calls.append((args[0].detach(), args[1].detach())))
    try:
        engine.fit(model, kdd_rows, engine.TrainOptions(steps=1, batch_size=50, progress=False))
    finally:
        handle.remove()
    # D step: (x, E(x)) then (G(z), z); G/E step: (x', E(x')) then (G(z'), z')
    assert len(calls) == 4
    (x_d, _), (_, z_d), (x_ge, _), (_, z_ge) = calls
    rows = {r.numpy().tobytes() for r in x}
    assert all(r.numpy().tobytes() in rows for r in torch.cat([x_d, x_ge]))  # both are training rows
    assert not torch.equal(x_d, x_ge), "the two steps must get different batches"
    assert not torch.equal(z_d, z_ge), "the two steps must draw their own z"


def test_ema_is_saved_restored_and_resumed_bit_for_bit(tmp_path, kdd_rows):
    det = ganad.EGBAD(epochs=1, batch_size=50, verbose=False, lr=1e-3, ema_decay=0.99).fit(kdd_rows[:500])
    assert int(det.model_.ema.steps) == 10
    det.save(tmp_path / "m")
    back = ganad.EGBAD.load(tmp_path / "m")
    for k, v in det.model_.ema.state_dict().items():
        assert torch.equal(back.model_.ema.state_dict()[k], v), k
    np.testing.assert_array_equal(back.decision_function(kdd_rows[500:]), det.decision_function(kdd_rows[500:]))

    def run(epochs: int, folder, resume: bool = False) -> EGBAD:
        torch.manual_seed(0)
        model = EGBAD(ROWS, lr=1e-3, ema_decay=0.99)
        opts = engine.TrainOptions(epochs=epochs, batch_size=50, progress=False, select_on="last", seed=0)
        engine.seed_everything(0)
        engine.fit(model, kdd_rows[:300], opts, run_dir=folder, resume=resume)
        return model

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    straight = run(2, tmp_path / "a")
    run(1, tmp_path / "b")
    resumed = run(2, tmp_path / "b", resume=True)
    assert int(resumed.ema.steps) == int(straight.ema.steps) == 12
    for k, v in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[k], v), k
