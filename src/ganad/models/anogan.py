"""AnoGAN (Schlegl, Seeböck, Waldstein, Schmidt-Erfurth & Langs, IPMI 2017, arXiv 1703.05921).

A DCGAN (generator G, discriminator D) is trained on normal data only. To
score x, the paper searches the latent space: starting from z_1, Γ
backpropagation steps minimise

    L(z) = (1 - λ) · R(z) + λ · D(z),   R(z) = Σ |x - G(z)|
    D(z) = Σ |f(x) - f(G(z))|  (feature matching)  or  σ(D(G(z)), 1)  (the BCE variant)

with λ = 0.1 and Γ = 500; the anomaly score is L(z_Γ) and the
residual |x - G(z_Γ)| is the anomaly map. The search updates z only: G and D
are frozen (PyOD's AnoGAN instead keeps training G and D while it scores,
and its ``decision_function`` skips the search; ganad does neither).

The search runs for a whole batch at once: every sample has its own z and
its loss terms are summed, so each z's gradient depends on its own sample
only, and Adam's moments are element-wise; with batch norm in eval mode the
result equals a one-at-a-time search. Every sample starts from the same z_1,
drawn once from N(0, I) with ``search_seed``, so scores are deterministic and
independent of batching. The optimiser on z is Adam (lr ``search_lr``), as in
the widely used re-implementations (tkwoo/anogan-keras, PyOD's ``lr_query``);
the paper only says "backpropagation".
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ganad.errors import ConfigError
from ganad.models.base import Model, frozen, real_fake_bce
from ganad.nets import make_decoder, make_discriminator


class AnoGAN(Model):
    name = "anogan"
    api_name = "AnoGAN"
    paper = "Schlegl et al., Unsupervised Anomaly Detection with Generative Adversarial Networks, IPMI 2017"
    limits: ClassVar[dict] = dict(lam=(0.0, 1.0))  # the weight of a convex mix (1 - λ)·R + λ·D
    default_selection = "last"  # selecting on validation would cost a latent search per epoch
    defaults: ClassVar[dict] = dict(
        nz=100,  # DCGAN latent size (Radford et al. 2016), used by the paper's DCGAN
        width=64,
        lr=2e-4,  # DCGAN's Adam settings
        beta1=0.5,
        lam=0.1,  # λ, paper Sec. 2.2 ("we set λ = 0.1")
        search_steps=500,  # Γ, paper Sec. 3 ("Γ = 500")
        search_lr=0.01,  # Adam on z (anogan-keras / PyOD lr_query); not stated in the paper
        discrimination="fm",  # "fm": feature matching (the paper's choice); "bce": σ(D(G(z)), 1)
        search_seed=0,
        val_search_steps=50,  # cheaper search for validation_score
    )

    def build(self) -> None:
        h, spec = self.hparams, self.spec
        if h["discrimination"] not in ("fm", "bce"):
            raise ConfigError(f"anogan.discrimination must be 'fm' or 'bce', got {h['discrimination']!r}")
        conv = {"width": h["width"]} if spec.kind == "image" else {}
        self.generator = make_decoder(spec, h["nz"], **conv)
        self.netd = make_discriminator(spec, **conv)
        self.optimizers = {"g": self.adam(self.generator.parameters()), "d": self.adam(self.netd.parameters())}

    def train_step(self, x: Tensor) -> dict[str, float]:
        """One DCGAN step (Goodfellow et al. 2014, non-saturating generator loss)."""
        z = torch.randn(len(x), self.hparams["nz"], device=x.device)
        fake = self.generator(z)
        logit_real, _ = self.netd(x)
        logit_fake, _ = self.netd(fake.detach())
        d_loss = real_fake_bce(logit_real, logit_fake)
        self.update(d_loss, "d")

        with frozen(self.netd):  # no D weight gradients in G's step
            logit_gen, _ = self.netd(fake)
        g_loss = F.binary_cross_entropy_with_logits(logit_gen, torch.ones_like(logit_gen))
        self.update(g_loss, "g")
        return {"d": d_loss.item(), "g": g_loss.item()}

    def search_loss(self, x: Tensor, z: Tensor, feat_x: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Per-sample L(z) and the residual map |x - G(z)|.

        ``feat_x`` (D's features of x) may be passed in: it does not depend on
        z, so the search computes it once instead of at each of its Γ steps.
        """
        lam = self.hparams["lam"]
        g = self.generator(z)
        residual_map = (x - g).abs()
        residual = residual_map.flatten(1).sum(1)  # residual loss
        logit_g, feat_g = self.netd(g)
        if self.hparams["discrimination"] == "fm":
            if feat_x is None:
                _, feat_x = self.netd(x)
            discrimination = (feat_x - feat_g).abs().sum(1)  # feature-matching discrimination loss
        else:
            discrimination = F.binary_cross_entropy_with_logits(logit_g, torch.ones_like(logit_g), reduction="none")
        return (1 - lam) * residual + lam * discrimination, residual_map

    def latent_search(self, x: Tensor, steps: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Γ Adam steps on z for the whole batch; returns (z*, L(z*), residual map). Weights never change."""
        steps = self.hparams["search_steps"] if steps is None else steps
        params = list(self.parameters())
        flags = [p.requires_grad for p in params]
        was_training = self.training
        self.eval()
        for p in params:
            p.requires_grad_(False)
        try:
            gen = torch.Generator().manual_seed(self.hparams["search_seed"])
            z0 = torch.randn(1, self.hparams["nz"], generator=gen).to(x.device)
            z = z0.repeat(len(x), 1).requires_grad_(True)
            opt = torch.optim.Adam([z], lr=self.hparams["search_lr"])
            with torch.no_grad():  # f(x) is the same at every step (D frozen, eval mode): once, not Γ times
                feat_x = self.netd(x)[1] if self.hparams["discrimination"] == "fm" else None
            with torch.enable_grad():
                for _ in range(steps):
                    loss, _ = self.search_loss(x, z, feat_x)
                    opt.zero_grad(set_to_none=True)
                    loss.sum().backward()  # sum: each z gets the gradient of its own sample's loss
                    opt.step()
            with torch.no_grad():
                loss, residual_map = self.search_loss(x, z, feat_x)
        finally:
            for p, f in zip(params, flags, strict=True):
                p.requires_grad_(f)
            self.train(was_training)
        return z.detach(), loss.detach(), residual_map.detach()

    def score(self, x: Tensor) -> Tensor:
        """Anomaly score A(x) = L(z_Γ) (paper Sec. 2.3)."""
        return self.latent_search(x)[1]

    def validation_score(self, x: Tensor) -> Tensor:
        return self.latent_search(x, self.hparams["val_search_steps"])[1]

    def reconstruct(self, x: Tensor) -> Tensor:
        """G(z*) after the latent search."""
        z = self.latent_search(x)[0]
        with torch.no_grad():
            return self.generator(z)

    def anomaly_map(self, x: Tensor) -> Tensor:
        residual_map = self.latent_search(x)[2]
        return residual_map.sum(dim=1) if residual_map.dim() == 4 else residual_map
