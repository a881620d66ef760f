"""GANomaly (Akcay, Atapour-Abarghouei & Breckon, ACCV 2018, arXiv 1805.06725).

Generator G = encoder G_E -> decoder G_D -> encoder E: x -> z -> x_hat -> z_hat.
Discriminator D: DCGAN discriminator whose last feature map is used for
feature matching. Reference code: github.com/samet-akcay/ganomaly
(``lib/model.py``, ``lib/networks.py``). docs/models.md maps each loss term to
the methods below.

Where the reference code and ganad differ (see docs/models.md):

* Scoring mode: the reference ``test()`` scores under ``torch.no_grad()`` but
  leaves ``netg`` in train mode, so batch norm uses the statistics of each
  test batch (and its test loader is ordered normals-then-anomalies, so a
  batch's composition leaks into its scores). ganad scores in eval mode
  (running statistics): a sample's score never depends on its neighbours.
* Model selection: the reference keeps the epoch with the best *test* AUROC
  (``train()``: ``if res[metric] > best_auc: save_weights``). ganad selects on
  validation data carved from the training side; ``select_on="test"``
  reproduces the reference and every output then says so.
* The discriminator ends in a sigmoid + ``BCELoss`` in the reference; here it
  returns logits and uses ``binary_cross_entropy_with_logits`` (same loss,
  numerically stable).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ganad.models.base import Model, frozen, real_fake_bce
from ganad.nets import dcgan_init, make_decoder, make_discriminator, make_encoder


class GANomaly(Model):
    name = "ganomaly"
    stackable = True  # row-mean losses only; D re-initialisation per seed (reinit_below)
    api_name = "GANomaly"
    paper = "Akcay et al., GANomaly: Semi-Supervised Anomaly Detection via Adversarial Training, ACCV 2018"
    defaults: ClassVar[dict] = dict(
        nz=100,
        width=64,
        extra_layers=0,
        w_adv=1.0,
        w_con=50.0,
        w_enc=1.0,
        lr=2e-4,
        beta1=0.5,
        reinit_d_below=1e-5,
    )
    meanings: ClassVar[dict[str, str]] = dict(
        nz="paper Sec. 4 / code --nz",
        width="ngf = ndf = 64",
        w_adv="adversarial weight (code --w_adv)",
        w_con="contextual loss weight (code --w_con)",
        w_enc="encoder loss weight (code --w_enc)",
        reinit_d_below='code: "if self.err_d.item() < 1e-5: self.reinit_d()"',
    )

    def build(self) -> None:
        h, spec = self.hparams, self.spec
        conv = {"width": h["width"], "extra_layers": h["extra_layers"]} if spec.kind == "image" else {}
        self.encoder1 = make_encoder(spec, h["nz"], **conv)  # G_E
        self.decoder = make_decoder(spec, h["nz"], **conv)  # G_D
        self.encoder2 = make_encoder(spec, h["nz"], **conv)  # E
        self.netd = make_discriminator(spec, **conv)
        g_params = [*self.encoder1.parameters(), *self.decoder.parameters(), *self.encoder2.parameters()]
        self.optimizers = {"g": self.adam(g_params), "d": self.adam(self.netd.parameters())}

    def generate(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x -> (x_hat, z, z_hat)."""
        z = self.encoder1(x)
        x_hat = self.decoder(z)
        return x_hat, z, self.encoder2(x_hat)

    def train_step(self, x: Tensor) -> dict[str, float]:
        h = self.hparams
        x_hat, z, z_hat = self.generate(x)

        # Generator objective: L = w_adv L_adv + w_con L_con + w_enc L_enc
        with frozen(self.netd):  # D passes gradients to x_hat only; its own step comes next
            _, feat_real = self.netd(x)
            _, feat_fake = self.netd(x_hat)
        adversarial_loss = F.mse_loss(feat_fake, feat_real.detach())  # adversarial loss, feature matching
        contextual_loss = F.l1_loss(x_hat, x)  # contextual loss
        encoder_loss = F.mse_loss(z_hat, z)  # encoder loss
        g_loss = h["w_adv"] * adversarial_loss + h["w_con"] * contextual_loss + h["w_enc"] * encoder_loss
        self.update(g_loss, "g")

        # Discriminator: BCE real vs fake (code: err_d = (err_d_real + err_d_fake) * 0.5)
        logit_real, _ = self.netd(x)
        logit_fake, _ = self.netd(x_hat.detach())
        d_loss = 0.5 * real_fake_bce(logit_real, logit_fake)
        self.update(d_loss, "d")

        # code: reinit_d() when D has won outright (stacked: each seed's D on its own loss)
        d_reinit = self.reinit_below(
            self.netd,
            dcgan_init,
            d_loss,
            h["reinit_d_below"],
            lambda: 0.5 * self.seed_means(real_fake_bce(logit_real.detach(), logit_fake.detach(), "none")),
        )
        return {
            "adversarial": adversarial_loss.item(),
            "contextual": contextual_loss.item(),
            "encoder": encoder_loss.item(),
            "g": g_loss.item(),
            "d": d_loss.item(),
            "d_reinit": d_reinit,
        }

    @torch.no_grad()
    def score(self, x: Tensor) -> Tensor:
        """A(x) = ||G_E(x) - E(G(x))||: the code's mean squared difference (the paper writes L1).

        The paper then min-max scales scores over the test set; that
        does not change AUROC and would make a score depend on its batch, so
        the engine reports the scaled scores beside the raw ones instead.
        """
        _, z, z_hat = self.generate(x)
        return (z - z_hat).pow(2).mean(dim=1)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        return self.generate(x)[0]

    @torch.no_grad()
    def anomaly_map(self, x: Tensor) -> Tensor:
        """|x - x_hat|, summed over channels for images (paper Fig. 6)."""
        x_hat, _, _ = self.generate(x)
        diff = (x - x_hat).abs()
        return diff.sum(dim=1) if diff.dim() == 4 else diff
