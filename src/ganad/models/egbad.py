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

What ganad takes from the official code (``bigan/run_kdd.py``,
``run_mnist.py``, ``kdd_utilities.py``), by input kind (``None`` defaults):

* scoring with an exponential moving average of E, G and D's weights
  (``ema_decay``: 0.9999 on rows = ``run_kdd.py``, 0.999 on images =
  ``run_mnist.py``), bias-corrected (:class:`ganad.models.base.EMA`: TF's
  average starts at the initial weights, which would dominate it at the few
  thousand steps ganad's budgets run);
* D trained on one shuffle of the training set and G, E on another
  (``trainx`` / ``trainx_copy``; ``paired_batches``: the engine hands
  ``train_step`` both batches), each step with its own z (the code's
  ``tf.random_normal`` op is drawn anew at every ``sess.run``);
* rows: Xavier-uniform kernels with zero biases (``init="xavier"``),
  encoder LeakyReLU slope 0.1 (``leaky_slope``), latent size 32, dropout 0.2
  in D only, lr 1e-5, batch 50 (the batch is a training option: the KDD
  config sets it). Images keep the paper's MNIST settings (latent 200,
  dropout 0.5, DCGAN init).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ganad.errors import ConfigError
from ganad.models.base import EMA, Model, real_fake_bce
from ganad.nets import JointDiscriminator, make_decoder, make_encoder


class EGBAD(Model):
    name = "egbad"
    api_name = "EGBAD"
    stackable = True  # row-mean losses, feature matching per seed (batch_mean), gradients via seed_sum
    paper = "Zenati et al., Efficient GAN-Based Anomaly Detection, ICLR workshop 2018 (arXiv 1802.06222)"
    # α weighs a convex mix; a decay of 1 would never move the average
    limits: ClassVar[dict] = dict(alpha=(0.0, 1.0), dropout=(0.0, 0.99), ema_decay=(0.0, 0.99999), leaky_slope=(0, 1))
    choices: ClassVar[dict] = dict(
        score_method=("fm", "cross-e"), gen_loss=("bce", "fm"), init=(None, "xavier", "default")
    )
    paired_batches = True  # code: D on trainx[t], G and E on trainx_copy[t] (two shuffles)
    defaults: ClassVar[dict] = dict(
        nz=None,
        width=64,
        lr=1e-5,
        beta1=0.5,
        dropout=None,
        alpha=0.9,
        score_method="fm",
        gen_loss="bce",
        encoder_residual=False,
        ema_decay=None,
        init=None,
        leaky_slope=None,
    )
    meanings: ClassVar[dict[str, str]] = dict(
        nz="code: latent_dim 200 (mnist_utilities.py) / 32 (kdd_utilities.py); None = by input kind",
        lr="code: learning_rate = 0.00001 (both data sets)",
        beta1="code: AdamOptimizer(beta1=0.5)",
        dropout="dropout in D; code: 0.5 (MNIST D) / 0.2 (KDD D); None = by input kind",
        alpha="score = alpha * ||x - G(E(x))||_1 + (1 - alpha) * L_D; code: (1 - weight) with --w 0.1 (main.py)",
        score_method="L_D in the score: 'fm' = feature matching on D's features (the code's default --m fm), "
        "'cross-e' = D's cross-entropy",
        gen_loss="generator loss: 'bce' (the code's) or 'fm' = feature matching (survey Table 1)",
        encoder_residual="survey Table 1: add ||x - G(E(x))||_1 to the encoder loss",
        ema_decay="decay of the weight average scored with; code: 0.9999 (run_kdd.py) / 0.999 (run_mnist.py); "
        "None = by input kind, 0 = off",
        init='rows: "xavier" (kdd_utilities.py init_kernel) or "default" (PyTorch\'s); images: conv nets\' DCGAN',
        leaky_slope="encoder LeakyReLU slope on rows: code 0.1 (kdd_utilities.py leakyReLu); None = 0.1",
    )

    def build(self) -> None:
        h, spec = self.hparams, self.spec
        image = spec.kind == "image"
        if image and (h["init"] is not None or h["leaky_slope"] is not None):
            raise ConfigError("egbad.init and egbad.leaky_slope set the row (MLP) nets; images use the DCGAN conv nets")
        self.nz = h["nz"] or (200 if image else 32)
        dropout = h["dropout"] if h["dropout"] is not None else (0.5 if image else 0.2)
        if image:
            conv = {"width": h["width"]}
            self.encoder = make_encoder(spec, self.nz, **conv)
            self.generator = make_decoder(spec, self.nz, **conv)
            joint = dict(z_width=512, joint_width=1024)
        else:  # kdd_utilities.py: Xavier kernels, encoder LeakyReLU 0.1, D 128 / 128 / 128 units
            init = h["init"] or "xavier"
            slope = h["leaky_slope"] if h["leaky_slope"] is not None else 0.1
            self.encoder = make_encoder(spec, self.nz, slope=slope, init=init)
            self.generator = make_decoder(spec, self.nz, init=init)
            joint = dict(z_width=128, joint_width=128, init="xavier" if init == "xavier" else "dcgan")
        self.netd = JointDiscriminator(spec, self.nz, width=h["width"], dropout=dropout, **joint)
        self.optimizers = {
            "d": self.adam(self.netd.parameters()),
            "g": self.adam(self.generator.parameters()),
            "e": self.adam(self.encoder.parameters()),
        }
        decay = h["ema_decay"] if h["ema_decay"] is not None else (0.999 if image else 0.9999)
        # code: dis_ema / gen_ema / enc_ema, applied after each dis_op / gen_op / enc_op
        nets = {"encoder": self.encoder, "generator": self.generator, "netd": self.netd}
        self.ema = EMA(nets, decay) if decay > 0 else None

    def train_step(self, x: Tensor, x_ge: Tensor | None = None) -> dict[str, float]:
        """D on ``x``, then G and E on ``x_ge`` (another shuffle; ``x`` again when not given), each with its own z.

        Code (run_kdd.py): the D step feeds ``trainx[ran_from:ran_to]``, the
        G/E step ``trainx_copy[ran_from:ran_to]`` (separately permuted), and
        ``z = tf.random_normal(...)`` is a fresh draw in each ``sess.run``.
        """
        h = self.hparams
        z = self.noise(len(x), self.nz)
        # discriminator: (x, E(x)) real, (G(z), z) fake (code: loss_dis_enc + loss_dis_gen)
        with torch.no_grad():
            z_enc, x_gen = self.encoder(x), self.generator(z)
        logit_enc, _ = self.netd(x, z_enc)
        logit_gen, _ = self.netd(x_gen, z)
        d_loss = real_fake_bce(logit_enc, logit_gen)
        self.update(d_loss, "d")

        # generator and encoder, against the updated D (code: gen_op and enc_op in one run),
        # on the second shuffle's batch and a new z (code: trainx_copy, a new tf.random_normal draw)
        if x_ge is not None:
            x = x_ge
        z = self.noise(len(x), self.nz)
        z_enc, x_gen = self.encoder(x), self.generator(z)
        logit_enc, feat_enc = self.netd(x, z_enc)
        logit_gen, feat_gen = self.netd(x_gen, z)
        if h["gen_loss"] == "bce":
            g_loss = F.binary_cross_entropy_with_logits(logit_gen, torch.ones_like(logit_gen))
        else:  # feature matching: mean features of generated pairs match those of real pairs
            g_loss = (self.batch_mean(feat_enc.detach()) - self.batch_mean(feat_gen)).pow(2).mean()
        e_loss = F.binary_cross_entropy_with_logits(logit_enc, torch.zeros_like(logit_enc))
        out = {"d": d_loss.item(), "g": g_loss.item(), "e": e_loss.item()}
        if h["encoder_residual"]:
            residual = (x - self.generator(z_enc)).abs().flatten(1).sum(1).mean()
            e_loss = e_loss + residual
            out["e_residual"] = residual.item()
        self.optimizers["g"].zero_grad(set_to_none=True)
        self.optimizers["e"].zero_grad(set_to_none=True)
        # each optimiser sees only its own loss's gradients
        g_grads = torch.autograd.grad(
            self.seed_sum(g_loss), list(self.generator.parameters()), retain_graph=True, allow_unused=True
        )
        e_grads = torch.autograd.grad(self.seed_sum(e_loss), list(self.encoder.parameters()), allow_unused=True)
        for p, g in zip(self.generator.parameters(), g_grads, strict=True):
            p.grad = g
        for p, g in zip(self.encoder.parameters(), e_grads, strict=True):
            p.grad = g
        self.optimizers["g"].step()
        self.optimizers["e"].step()
        if self.ema is not None:  # code: maintain_averages_op_{dis,gen,enc} after each optimiser op
            self.ema.update()
        return out

    @torch.no_grad()
    def score_both(self, x: Tensor) -> dict[str, Tensor]:
        """Reconstruction and both discriminator losses from one pass, and both mixed scores (EMA weights)."""
        with self.averaged_weights():
            return self._score_both(x)

    def _score_both(self, x: Tensor) -> dict[str, Tensor]:
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
        """G(E(x)) with the EMA weights (what the score compares x with)."""
        with self.averaged_weights():
            return self.generator(self.encoder(x))

    @torch.no_grad()
    def anomaly_map(self, x: Tensor) -> Tensor:
        diff = (x - self.reconstruct(x)).abs()
        return diff.sum(dim=1) if diff.dim() == 4 else diff

    def sample(self, n: int, seed: int) -> Tensor:
        """G(z) for ``n`` latents z ~ N(0, I) drawn from ``seed`` (EMA weights, eval mode), for mode-coverage checks."""
        return self.sample_prior(self.generator, self.nz, n, seed)
