"""EGBAD: efficient GAN-based anomaly detection with a BiGAN (Zenati et al. 2018, arXiv 1802.06222).

An encoder E (x -> z), a generator G (z -> x) and a discriminator D(x, z) on
joint pairs are trained as a BiGAN (Donahue et al. 2017): D tells (x, E(x))
from (G(z), z). At test time there is no latent search: x -> E(x) -> G(E(x))
in one pass, which is what makes EGBAD hundreds of times faster than AnoGAN.

Score (paper Sec. 2 / code ``bigan/run_kdd.py``, ``run_mnist.py``):

    A(x) = α · ||x - G(E(x))||_1 + (1 - α) · L_D(x)
    L_D = σ(D(x_hat, E(x)), 1)                          ("cross-e")
    L_D = ||f(x, E(x)) - f(G(E(x)), E(x))||_1          ("fm", the code's default)

The code computes ``(1 - weight) * gen_score + weight * dis_score`` with
``--w`` default 0.1 (``main.py``), i.e. α = 0.9 on the reconstruction; ganad
uses ``alpha=0.9``. :meth:`EGBAD.score_both` returns both L_D variants from
one forward pass (the survey's "cross-entropy" and "feature matching" rows).

Training variants (survey, Di Mattia et al. 2019, Table 1): the generator
loss is BCE (the code) or feature matching (``gen_loss="fm"``: squared
distance of mean D features of real and generated pairs, Salimans et al.
2016); ``encoder_residual=True`` adds ||x - G(E(x))||_1 to the encoder loss.

Differences from the code (see docs/models.md): the code keeps an exponential
moving average (decay 0.9999) of all weights and scores with it; ganad scores
with the trained weights. The code trains D on one shuffled copy of the batch
and G, E on another; ganad uses the same batch for both steps.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ganad.errors import ConfigError
from ganad.models.base import Model, real_fake_bce
from ganad.nets import JointDiscriminator, make_decoder, make_encoder


class EGBAD(Model):
    name = "egbad"
    api_name = "EGBAD"
    paper = "Zenati et al., Efficient GAN-Based Anomaly Detection, ICLR workshop 2018 (arXiv 1802.06222)"
    limits: ClassVar[dict] = dict(alpha=(0.0, 1.0), dropout=(0.0, 0.99))  # α weighs a convex mix
    defaults: ClassVar[dict] = dict(
        nz=None,  # code: latent_dim 200 (mnist_utilities.py) / 32 (kdd_utilities.py); None = by input kind
        width=64,
        lr=1e-5,  # code: learning_rate = 0.00001 (both data sets)
        beta1=0.5,  # code: AdamOptimizer(beta1=0.5)
        dropout=None,  # code: 0.5 (MNIST D) / 0.2 (KDD D); None = by input kind
        alpha=0.9,  # code: (1 - weight) with --w 0.1 (main.py)
        score_method="fm",  # code: --m default 'fm'; or "cross-e"
        gen_loss="bce",  # code: BCE; "fm" = feature matching (survey Table 1)
        encoder_residual=False,  # survey Table 1: add ||x - G(E(x))||_1 to the encoder loss
    )

    def build(self) -> None:
        h, spec = self.hparams, self.spec
        if h["score_method"] not in ("fm", "cross-e"):
            raise ConfigError(f"egbad.score_method must be 'fm' or 'cross-e', got {h['score_method']!r}")
        if h["gen_loss"] not in ("bce", "fm"):
            raise ConfigError(f"egbad.gen_loss must be 'bce' or 'fm', got {h['gen_loss']!r}")
        image = spec.kind == "image"
        self.nz = h["nz"] or (200 if image else 32)
        dropout = h["dropout"] if h["dropout"] is not None else (0.5 if image else 0.2)
        conv = {"width": h["width"]} if image else {}
        self.encoder = make_encoder(spec, self.nz, **conv)
        self.generator = make_decoder(spec, self.nz, **conv)
        joint = dict(z_width=512, joint_width=1024) if image else dict(z_width=128, joint_width=128)
        self.netd = JointDiscriminator(spec, self.nz, width=h["width"], dropout=dropout, **joint)
        self.optimizers = {
            "d": self.adam(self.netd.parameters()),
            "g": self.adam(self.generator.parameters()),
            "e": self.adam(self.encoder.parameters()),
        }

    def train_step(self, x: Tensor) -> dict[str, float]:
        h = self.hparams
        z = torch.randn(len(x), self.nz, device=x.device)
        # discriminator: (x, E(x)) real, (G(z), z) fake (code: loss_dis_enc + loss_dis_gen)
        with torch.no_grad():
            z_enc, x_gen = self.encoder(x), self.generator(z)
        logit_enc, _ = self.netd(x, z_enc)
        logit_gen, _ = self.netd(x_gen, z)
        d_loss = real_fake_bce(logit_enc, logit_gen)
        self.update(d_loss, "d")

        # generator and encoder, against the updated D (code: gen_op and enc_op in one run)
        z_enc, x_gen = self.encoder(x), self.generator(z)
        logit_enc, feat_enc = self.netd(x, z_enc)
        logit_gen, feat_gen = self.netd(x_gen, z)
        if h["gen_loss"] == "bce":
            g_loss = F.binary_cross_entropy_with_logits(logit_gen, torch.ones_like(logit_gen))
        else:  # feature matching: mean features of generated pairs match those of real pairs
            g_loss = (feat_enc.detach().mean(0) - feat_gen.mean(0)).pow(2).mean()
        e_loss = F.binary_cross_entropy_with_logits(logit_enc, torch.zeros_like(logit_enc))
        out = {"d": d_loss.item(), "g": g_loss.item(), "e": e_loss.item()}
        if h["encoder_residual"]:
            residual = (x - self.generator(z_enc)).abs().flatten(1).sum(1).mean()
            e_loss = e_loss + residual
            out["e_residual"] = residual.item()
        self.optimizers["g"].zero_grad(set_to_none=True)
        self.optimizers["e"].zero_grad(set_to_none=True)
        # each optimiser sees only its own loss's gradients
        g_grads = torch.autograd.grad(g_loss, list(self.generator.parameters()), retain_graph=True, allow_unused=True)
        e_grads = torch.autograd.grad(e_loss, list(self.encoder.parameters()), allow_unused=True)
        for p, g in zip(self.generator.parameters(), g_grads, strict=True):
            p.grad = g
        for p, g in zip(self.encoder.parameters(), e_grads, strict=True):
            p.grad = g
        self.optimizers["g"].step()
        self.optimizers["e"].step()
        return out

    @torch.no_grad()
    def score_both(self, x: Tensor) -> dict[str, Tensor]:
        """Reconstruction and both discriminator losses from one pass, and both mixed scores."""
        a = self.hparams["alpha"]
        z = self.encoder(x)
        x_hat = self.generator(z)
        reconstruction = (x - x_hat).abs().flatten(1).sum(1)
        _, feat_x = self.netd(x, z)
        logit_rec, feat_rec = self.netd(x_hat, z)
        cross_e = F.binary_cross_entropy_with_logits(logit_rec, torch.ones_like(logit_rec), reduction="none")
        fm = (feat_x - feat_rec).abs().sum(1)
        return {
            "reconstruction": reconstruction,
            "cross-e": cross_e,
            "fm": fm,
            "score_cross-e": a * reconstruction + (1 - a) * cross_e,
            "score_fm": a * reconstruction + (1 - a) * fm,
        }

    def score(self, x: Tensor) -> Tensor:
        return self.score_both(x)[f"score_{self.hparams['score_method']}"]

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        return self.generator(self.encoder(x))

    @torch.no_grad()
    def anomaly_map(self, x: Tensor) -> Tensor:
        diff = (x - self.generator(self.encoder(x))).abs()
        return diff.sum(dim=1) if diff.dim() == 4 else diff
