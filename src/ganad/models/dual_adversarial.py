"""Dual adversarial autoencoders with latent regularisation.

Chen, Liu, Xie, Ban, Wu, Tao & Song, "Latent Regularized Generative Dual
Adversarial Network For Abnormal Detection", IJCAI 2020 (arXiv 2002.01607).

Two autoencoders and one discriminator:

* G, the generator autoencoder: x -> z = G_E(x) -> x_hat = G_D(z);
* D', the dual (auxiliary) autoencoder, which reconstructs real samples well
  and G's reconstructions badly, BEGAN style (Berthelot et al. 2017);
* C, a real/fake discriminator on x vs x_hat.

Losses (weights from the paper: w_i=1, w_a=5, w_z=1, w_c=0.05, w_d=1, k=0.4):

    L_irec = ||x - x_hat||_1                               image reconstruction
    L_adv  = BCE(C(x_hat), real)                            adversarial, for G
    L_zrec = ||z - G_E(x_hat)||_2^2                         latent reconstruction
    L_c    = ||z - c||_2^2                                  latent regulariser towards a centre c
    L_dual = ||x - D'(x)||_1 - k ||x_hat - D'(x_hat)||_1    dual loss, for D'

G minimises w_i L_irec + w_a L_adv + w_z L_zrec + w_c L_c + w_d ||x_hat - D'(x_hat)||_1
(its side of the dual game: make its reconstructions look "real" to D');
D' minimises w_d L_dual; C minimises its BCE. The centre c is the mean latent
code of the first training batch (as Deep SVDD fixes its centre from an
initial pass), kept as a buffer so it is saved and restored with the weights.

Score: the paper scores a sample by its image reconstruction error ("one
sample could be regarded as the abnormal sample if it exhibits a higher image
reconstruction error", abstract): A(x) = mean |x - G(x)|. The full text was
not reachable from our machines, so the split of the dual loss between G and
D' above follows BEGAN, which the dual-autoencoder design is built on; see
docs/models.md.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganad.models.base import Model, frozen, real_fake_bce
from ganad.nets import make_decoder, make_discriminator, make_encoder


class AutoEncoder(nn.Module):
    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = self.encoder(x)
        return self.decoder(z), z


class DualAdversarialAE(Model):
    name = "dual-adversarial"
    api_name = "DualAdversarialAE"
    paper = "Chen et al., Latent Regularized Generative Dual Adversarial Network for Abnormal Detection, IJCAI 2020"
    defaults: ClassVar[dict] = dict(
        nz=100,
        width=64,
        lr=2e-4,
        beta1=0.5,
        w_i=1.0,  # image reconstruction
        w_a=5.0,  # adversarial
        w_z=1.0,  # latent reconstruction
        w_c=0.05,  # latent centre regulariser
        w_d=1.0,  # dual loss
        k=0.4,  # weight of the fake term in the dual loss
    )

    def build(self) -> None:
        h, spec = self.hparams, self.spec
        conv = {"width": h["width"]} if spec.kind == "image" else {}
        self.generator = AutoEncoder(make_encoder(spec, h["nz"], **conv), make_decoder(spec, h["nz"], **conv))
        self.dual = AutoEncoder(make_encoder(spec, h["nz"], **conv), make_decoder(spec, h["nz"], **conv))
        self.netd = make_discriminator(spec, **conv)
        self.register_buffer("centre", torch.zeros(h["nz"]))
        self.register_buffer("centre_set", torch.zeros((), dtype=torch.bool))
        self.optimizers = {
            "g": self.adam(self.generator.parameters()),
            "dual": self.adam(self.dual.parameters()),
            "d": self.adam(self.netd.parameters()),
        }

    def train_step(self, x: Tensor) -> dict[str, float]:
        h = self.hparams
        x_hat, z = self.generator(x)
        if not bool(self.centre_set):
            self.centre.copy_(z.detach().mean(0))
            self.centre_set.fill_(True)

        # generator autoencoder
        with frozen(self.netd):  # C and D' only pass gradients back to x_hat in G's step
            logit_fake, _ = self.netd(x_hat)
        image_rec = F.l1_loss(x_hat, x)
        adversarial = F.binary_cross_entropy_with_logits(logit_fake, torch.ones_like(logit_fake))
        latent_rec = (z - self.generator.encoder(x_hat)).pow(2).sum(1).mean()
        centre = (z - self.centre).pow(2).sum(1).mean()
        with frozen(self.dual):
            dual_fake_for_g = F.l1_loss(self.dual(x_hat)[0], x_hat)
        g_loss = (
            h["w_i"] * image_rec
            + h["w_a"] * adversarial
            + h["w_z"] * latent_rec
            + h["w_c"] * centre
            + h["w_d"] * dual_fake_for_g
        )
        self.update(g_loss, "g")

        # dual autoencoder: reconstruct real well, G's reconstructions badly
        fake = x_hat.detach()
        dual_real = F.l1_loss(self.dual(x)[0], x)
        dual_fake = F.l1_loss(self.dual(fake)[0], fake)
        dual_loss = h["w_d"] * (dual_real - h["k"] * dual_fake)
        self.update(dual_loss, "dual")

        # real / fake discriminator
        logit_real, _ = self.netd(x)
        logit_fake, _ = self.netd(fake)
        d_loss = 0.5 * real_fake_bce(logit_real, logit_fake)
        self.update(d_loss, "d")
        return {
            "image_rec": image_rec.item(),
            "adversarial": adversarial.item(),
            "latent_rec": latent_rec.item(),
            "centre": centre.item(),
            "dual": dual_loss.item(),
            "g": g_loss.item(),
            "d": d_loss.item(),
        }

    @torch.no_grad()
    def score(self, x: Tensor) -> Tensor:
        """Image reconstruction error, mean |x - G(x)| per sample."""
        return (x - self.generator(x)[0]).abs().flatten(1).mean(1)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        return self.generator(x)[0]

    @torch.no_grad()
    def anomaly_map(self, x: Tensor) -> Tensor:
        diff = (x - self.generator(x)[0]).abs()
        return diff.sum(dim=1) if diff.dim() == 4 else diff
