"""The training hot path's speed-ups change no number: frozen nets, hoisted search features, foreach Adam.

Each speed-up is only allowed because it is semantics-free on the CPU; these
tests hold it to that (behaviour, not timing: timings live in
benchmarks/throughput.py).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganad.data.types import InputSpec
from ganad.models import MODELS, AnoGAN
from ganad.models.base import frozen
from ganad.nets import make_discriminator

IMAGE = InputSpec("image", (1, 16, 16))
ROWS = InputSpec("tabular", (12,))


def test_frozen_skips_weight_gradients_keeps_input_gradients_and_restores_flags():
    torch.manual_seed(0)
    net = make_discriminator(IMAGE, width=8)
    already_off = next(net.parameters())
    already_off.requires_grad_(False)  # a caller's own freeze survives ours
    x = torch.randn(4, *IMAGE.shape)

    x_ref = x.clone().requires_grad_(True)
    net(x_ref)[0].sum().backward()
    net.zero_grad(set_to_none=True)

    x_in = x.clone().requires_grad_(True)
    with frozen(net):
        logit, _ = net(x_in)
    logit.sum().backward()
    assert all(p.grad is None for p in net.parameters())
    assert torch.equal(x_in.grad, x_ref.grad)
    assert [p.requires_grad for p in net.parameters()] == [p is not already_off for p in net.parameters()]

    with pytest.raises(RuntimeError), frozen(net):
        raise RuntimeError("boom")
    assert [p.requires_grad for p in net.parameters()] == [p is not already_off for p in net.parameters()]


@pytest.mark.parametrize("spec", [IMAGE, ROWS], ids=["conv", "mlp"])
@pytest.mark.parametrize("name", list(MODELS))
def test_generator_step_leaves_no_stale_gradients_and_every_net_trainable(name, spec):
    """After a step (which freezes D, and D' for the dual model, in G's half) every parameter is trainable again."""
    torch.manual_seed(0)
    hp = {"width": 8} if spec.kind == "image" and "width" in MODELS[name].defaults else {}  # baselines: no nets
    model = MODELS[name](spec, **hp).train()
    x = torch.rand(8, *spec.shape) * 2 - 1
    model.train_step(x)
    assert all(p.requires_grad for p in model.parameters())


def _step_by_hand_without_freezing(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """GANomaly's generator gradients computed the pre-freeze way: D's weights requiring grad."""
    import torch.nn.functional as F

    h = model.hparams
    x_hat, z, z_hat = model.generate(x)
    _, feat_real = model.netd(x)
    _, feat_fake = model.netd(x_hat)
    g_loss = (
        h["w_adv"] * F.mse_loss(feat_fake, feat_real.detach())
        + h["w_con"] * F.l1_loss(x_hat, x)
        + h["w_enc"] * F.mse_loss(z_hat, z)
    )
    g_params = [*model.encoder1.parameters(), *model.decoder.parameters(), *model.encoder2.parameters()]
    return dict(zip([str(i) for i in range(len(g_params))], torch.autograd.grad(g_loss, g_params), strict=True))


def test_ganomaly_generator_gradients_identical_with_discriminator_frozen():
    torch.manual_seed(0)
    model = MODELS["ganomaly"](IMAGE, width=8).train()
    x = torch.rand(8, *IMAGE.shape) * 2 - 1
    state = {k: v.clone() for k, v in model.state_dict().items()}
    reference = _step_by_hand_without_freezing(model, x)
    model.load_state_dict(state)  # batch-norm statistics back to where they were
    opt = model.optimizers["g"]
    captured: dict[str, torch.Tensor] = {}
    g_params = [p for group in opt.param_groups for p in group["params"]]

    def capture(*_: object, **__: object) -> None:
        captured.update({str(i): p.grad.clone() for i, p in enumerate(g_params)})

    handle = opt.register_step_pre_hook(capture)
    try:
        model.train_step(x)
    finally:
        handle.remove()
    assert captured.keys() == reference.keys()
    assert all(torch.equal(captured[k], reference[k]) for k in reference)


@pytest.mark.parametrize("spec", [IMAGE, ROWS], ids=["conv", "mlp"])
def test_latent_search_with_hoisted_features_equals_recomputing_them(spec):
    torch.manual_seed(0)
    hp = {"width": 8} if spec.kind == "image" else {}
    model = AnoGAN(spec, **hp).eval()
    x = torch.rand(5, *spec.shape) * 2 - 1
    z = torch.randn(5, model.nz)
    with torch.no_grad():
        recomputed, map_a = model.search_loss(x, z)
        hoisted, map_b = model.search_loss(x, z, model.netd(x)[1])
    assert torch.equal(recomputed, hoisted) and torch.equal(map_a, map_b)


def test_adam_uses_foreach_and_matches_the_single_tensor_update():
    """foreach=True is bit-identical to the per-tensor loop on the CPU and is CUDA's default anyway."""
    torch.manual_seed(0)
    model = MODELS["ganomaly"](ROWS).train()
    assert all(g["foreach"] for opt in model.optimizers.values() for g in opt.param_groups)
    params = [p.detach().clone().requires_grad_(True) for p in model.encoder1.parameters()]
    twins = [p.detach().clone().requires_grad_(True) for p in params]
    a = torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999), foreach=True)
    b = torch.optim.Adam(twins, lr=2e-4, betas=(0.5, 0.999), foreach=False)
    for step in range(5):
        for p, q in zip(params, twins, strict=True):
            g = torch.randn(p.shape, generator=torch.Generator().manual_seed(step))
            p.grad, q.grad = g.clone(), g.clone()
        a.step()
        b.step()
    assert all(torch.equal(p, q) for p, q in zip(params, twins, strict=True))
