"""Dual adversarial autoencoders with latent regularisation.

Chen, Liu, Xie, Ban, Wu, Tao & Song, "Latent Regularized Generative Dual
Adversarial Network For Abnormal Detection", IJCAI 2020 (arXiv 2002.01607).

Two autoencoders and one discriminator:

* G = (G_e, G_d), the generator autoencoder: x -> z = G_e(x) -> x' = G_d(z)
  (x' is the paper's name for G's reconstruction; ``x_hat`` in the code);
* D' = (G_e', G_d'), the dual (auxiliary) autoencoder, which reconstructs real
  samples well and G's reconstructions badly, BEGAN style (Berthelot et al.
  2017); its latent of x' is z' = G_e'(x');
* C, a real/fake discriminator on x vs x'.

Losses (weights as our issue gives the paper's: w_i=1, w_a=5, w_z=1, w_c=0.05,
w_d=1, k=0.4; ganad's default w_i is 10, see below). Every term is a
per-sample norm, as the paper writes it, averaged over the batch: an L1 norm
sums |.| over all features (121 on KDD, C*H*W on images), an L2 norm is the
Euclidean length of the latent difference. (Until issue 16
the image terms were means over elements, i.e. divided by 121 or 1024, so
the image term was under 2 % of G's loss and the latent terms won.)

    L_irec = ||x - x'||_1                                   image reconstruction
    L_adv  = BCE(C(x'), real)                                adversarial, for G
    L_zrec = ||G_e(x) - G_e'(x')||_2                         latent reconstruction
    L_c    = ||G_e(x) - c||_2^2                              latent regulariser towards a centre c
    L_dual = ||x - D'(x)||_1 - k ||x' - D'(x')||_1            dual loss, for D'

G minimises w_i L_irec + w_a L_adv + w_z L_zrec + w_c L_c + w_d ||x' - D'(x')||_1
(its side of the dual game, BEGAN's generator loss: make its reconstructions
look "real" to D'). D' minimises w_d L_dual + w_z L_zrec: L_zrec compares G's
latent of x with the *dual* encoder's latent of x', so it trains both encoders
(each player on its own parameters, the other side detached). C minimises its
BCE.

Two choices are ours, both measured on min-max scaled KDD (EGBAD's protocol,
50k/50k rows, 5 epochs; docs/models.md):

* k_t: with the fixed k = 0.4 nothing bounds L_dual from below: once G's
  reconstructions are easy to tell from x (as at w_i = 1), D' drove
  ||x' - D'(x')||_1 to 1e5 per row in 10 epochs, and G's loss with it.
  ``k_control="began"`` (default) steers k_t as BEGAN does, from 0 and within
  [0, k]; with gamma = 1 it sits at k (the paper's game) as long as D'
  reconstructs G's outputs no worse than real rows, and falls when the fake
  error runs away. ``"fixed"`` keeps k_t = k.
* w_i = 10: at w_i = 1 the adversarial and dual terms (each with per-sample
  gradients as large as L_irec's) pull every reconstruction onto one typical
  `smurf` row: G's score is then the distance to that row (AUROC 0.72, the
  fingerprint issue 16 found). With w_i = 10 the same model reaches AUROC
  0.99. GANomaly weighs its image term 50x for the same reason.

The centre c (Deep SVDD, Ruff et al. 2018, ``init_center_c``): the mean of
G_e over the *whole* training set from one forward pass before training
(:meth:`prepare`, called once by the engine), with coordinates nearer 0 than
``centre_eps`` pushed out to +-``centre_eps``; G's MLP encoder has no bias
terms. Why: a c from one batch of a freshly initialised encoder with biases,
and an image term divided by the number of features, let the encoder map every
row onto c (the centre loss fell to 0.0014 before issue 16). What now keeps the
codes apart: L_irec at its per-sample scale (10x the others' weight) needs z
to carry x, since G_d sees nothing else; a bias-free encoder is positively
homogeneous (G_e(a x) = a G_e(x) for a > 0), so it has no constant output but
0, and c has no coordinate near 0. This is no proof on KDD, where each one-hot
group of columns sums to 1 and acts as a bias; the tests and docs/models.md
measure the spread of the codes instead. (The conv encoder's batch norms keep
their shift, as every model shares that net.) c is a
buffer, saved and restored with the weights.

Score (``score_with``): the paper scores with the reconstruction error of the
second autoencoder, which sees x' = G(x) as its input (its x'); ``"dual"``
(default) is ||x - D'(G(x))||_1 per sample, as the adversarial dual
autoencoders of Vu et al. 2019 that the design builds on. ``"generator"`` is
G's own ||x - G(x)||_1 (what this model scored with until issue 16).
The full text was not reachable from our machines; see docs/models.md for
which choices are ours.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganad.models.base import Model, frozen, real_fake_bce
from ganad.nets import make_decoder, make_discriminator, make_encoder

SCORES = ("dual", "generator")


def l1_per_sample(a: Tensor, b: Tensor) -> Tensor:
    """||a - b||_1 summed over every feature of a sample, averaged over the batch."""
    return (a - b).abs().flatten(1).sum(1).mean()


def l2_per_sample(a: Tensor, b: Tensor) -> Tensor:
    """||a - b||_2 (the Euclidean length, not squared) per sample, averaged over the batch."""
    return torch.linalg.vector_norm(a - b, dim=1).mean()


class AutoEncoder(nn.Module):
    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = self.encoder(x)
        return self.decoder(z), z


class DualAdversarialAE(Model):
    name = "dual-adversarial"
    stackable = True  # row-mean losses; stacked, c, k_t and L_dual's errors are each seed's (per_row, seed_means)
    api_name = "DualAdversarialAE"
    paper = "Chen et al., Latent Regularized Generative Dual Adversarial Network for Abnormal Detection, IJCAI 2020"
    defaults: ClassVar[dict] = dict(
        nz=100,
        width=64,
        lr=2e-4,
        beta1=0.5,
        w_i=10.0,
        w_a=5.0,
        w_z=1.0,
        w_c=0.05,
        w_d=1.0,
        k=0.4,
        k_control="began",
        gamma=1.0,
        k_lr=1e-3,
        centre_eps=0.1,
        score_with="dual",
    )
    meanings: ClassVar[dict[str, str]] = dict(
        w_i="image reconstruction loss weight (ours: 1 lets the adversarial and dual terms collapse G, see docs)",
        w_a="adversarial loss weight",
        w_z="latent reconstruction loss weight",
        w_c="latent centre regulariser weight",
        w_d="dual loss weight",
        k='weight of the fake term in the dual loss (its ceiling with k_control="began")',
        k_control='"began": k_t by BEGAN\'s equilibrium control, at most k; "fixed": k_t = k',
        gamma="BEGAN's diversity ratio: k_t falls when ||x'-D'(x')|| exceeds gamma ||x-D'(x)||",
        k_lr="BEGAN's lambda_k, the control's step",
        centre_eps="Deep SVDD's eps: |c_j| is at least this",
        score_with='"dual": ||x - D\'(G(x))||_1 (paper); "generator": ||x - G(x)||_1',
    )
    choices: ClassVar[dict] = dict(score_with=SCORES, k_control=("began", "fixed"))
    limits: ClassVar[dict[str, tuple[float, float]]] = {
        "w_i": (0.0, 1e6),
        "w_a": (0.0, 1e6),
        "w_z": (0.0, 1e6),
        "w_c": (0.0, 1e6),
        "w_d": (0.0, 1e6),
        "k": (0.0, 1.0),
        "gamma": (0.0, 10.0),
        "k_lr": (0.0, 1.0),
        "centre_eps": (0.0, 1e3),
    }

    def build(self) -> None:
        h, spec = self.hparams, self.spec
        conv = {"width": h["width"]} if spec.kind == "image" else {}
        # G's encoder without biases (Deep SVDD): the conv encoder's convolutions have none already;
        # the MLP's linear layers drop theirs. The dual encoder carries no centre loss and keeps them.
        g_enc = {**conv} if spec.kind == "image" else {"bias": False}
        self.generator = AutoEncoder(make_encoder(spec, h["nz"], **g_enc), make_decoder(spec, h["nz"], **conv))
        self.dual = AutoEncoder(make_encoder(spec, h["nz"], **conv), make_decoder(spec, h["nz"], **conv))
        self.netd = make_discriminator(spec, **conv)
        self.register_buffer("centre", torch.zeros(h["nz"]))
        self.register_buffer("centre_set", torch.zeros((), dtype=torch.bool))
        # k_t, the weight of the fake term in L_dual: BEGAN starts it at 0 and steers it (see train_step)
        self.register_buffer("k_t", torch.tensor(0.0 if h["k_control"] == "began" else h["k"]))
        self.optimizers = {
            "g": self.adam(self.generator.parameters()),
            "dual": self.adam(self.dual.parameters()),
            "d": self.adam(self.netd.parameters()),
        }

    @torch.no_grad()
    def prepare(self, x_train: Tensor, batch_size: int = 256) -> None:
        """Fix the centre c from one forward pass of G_e over all training data (Deep SVDD's init_center_c).

        The pass uses batch statistics (train mode), as every training step
        does, but leaves the batch-norm running statistics as they were, so
        preparing changes nothing but c.
        """
        enc = self.generator.encoder
        buffers = {k: v.clone() for k, v in enc.state_dict().items()}
        was_training = enc.training
        enc.train()
        total = torch.zeros(self.hparams["nz"], device=self.centre.device)
        for i in range(0, len(x_train), batch_size):
            total += enc(x_train[i : i + batch_size]).sum(0)
        enc.load_state_dict(buffers)
        enc.train(was_training)
        self.set_centre(total / max(len(x_train), 1))

    def set_centre(self, c: Tensor) -> None:
        """c with coordinates nearer 0 than centre_eps moved to +-centre_eps (Deep SVDD: a zero
        coordinate is what a network with all-zero weights outputs, a trivial way onto c)."""
        eps = self.hparams["centre_eps"]
        c = c.detach().clone()
        c[(c.abs() < eps) & (c < 0)] = -eps
        c[(c.abs() < eps) & (c >= 0)] = eps
        self.centre.copy_(c)
        self.centre_set.fill_(True)

    def train_step(self, x: Tensor) -> dict[str, float]:
        h = self.hparams
        if not bool(self.centre_set.all()):  # only without the engine (which calls prepare): a direct train_step
            with torch.no_grad():
                self.set_centre(self.batch_mean(self.generator.encoder(x)))
        x_hat, z = self.generator(x)  # z = G_e(x), x' = G_d(z)

        # generator autoencoder G: C and D' are frozen, they only pass gradients back to x'
        with frozen(self.netd, self.dual):
            logit_fake, _ = self.netd(x_hat)
            dual_of_fake, z_dual = self.dual(x_hat)  # D'(x'), z' = G_e'(x')
        image_rec = l1_per_sample(x, x_hat)  # L_irec = ||x - x'||_1
        adversarial = F.binary_cross_entropy_with_logits(logit_fake, torch.ones_like(logit_fake))  # L_adv
        latent_rec = l2_per_sample(z, z_dual)  # L_zrec = ||G_e(x) - G_e'(x')||_2
        centre = (z - self.per_row(self.centre, len(z))).pow(2).sum(1).mean()  # L_c = ||G_e(x) - c||_2^2
        dual_fake_for_g = l1_per_sample(x_hat, dual_of_fake)  # ||x' - D'(x')||_1, BEGAN's L_G
        g_loss = (
            h["w_i"] * image_rec
            + h["w_a"] * adversarial
            + h["w_z"] * latent_rec
            + h["w_c"] * centre
            + h["w_d"] * dual_fake_for_g
        )
        self.update(g_loss, "g")

        # dual autoencoder D': reconstruct real well, G's reconstructions badly (L_dual),
        # and bring its latent of x' to G's latent of x (L_zrec, D''s side)
        fake = x_hat.detach()
        dual_real_rec = self.dual(x)[0]
        dual_fake_rec, z_dual = self.dual(fake)
        if self.stack == 1:
            dual_real = l1_per_sample(x, dual_real_rec)  # ||x - D'(x)||_1
            dual_fake = l1_per_sample(fake, dual_fake_rec)  # ||x' - D'(x')||_1
            dual_game = dual_real - self.k_t * dual_fake  # L_dual
        else:  # stacked: each seed's errors against its own k_t, then the mean over seeds as for every loss
            dual_real = self.seed_means((x - dual_real_rec).abs().flatten(1).sum(1))
            dual_fake = self.seed_means((fake - dual_fake_rec).abs().flatten(1).sum(1))
            dual_game = (dual_real - self.k_t * dual_fake).mean()
        dual_loss = h["w_d"] * dual_game + h["w_z"] * l2_per_sample(z.detach(), z_dual)
        self.update(dual_loss, "dual")
        if h["k_control"] == "began":
            # BEGAN: k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(x))), 0, k). With a fixed k, D' can push
            # ||x' - D'(x')|| up without bound (1e5 per row on KDD within 10 epochs when G collapsed); the
            # control lowers k_t whenever the fake error runs ahead of gamma times the real one. The error is
            # relative to L(x) (ours) so one lambda_k fits a 121-column row and a 1024-pixel image alike.
            with torch.no_grad():
                err = h["gamma"] - dual_fake / dual_real.clamp_min(1e-8)
                self.k_t.copy_((self.k_t + h["k_lr"] * err).clamp(0.0, h["k"]))

        # real / fake discriminator C
        logit_real, _ = self.netd(x)
        logit_fake, _ = self.netd(fake)
        d_loss = 0.5 * real_fake_bce(logit_real, logit_fake)
        self.update(d_loss, "d")
        return {
            "image_rec": image_rec.item(),
            "adversarial": adversarial.item(),
            "latent_rec": latent_rec.item(),
            "centre": centre.item(),
            "dual_real": dual_real.mean().item(),
            "dual_fake": dual_fake.mean().item(),
            "dual": dual_game.item(),
            "k_t": float(self.k_t.mean()),
            "g": g_loss.item(),
            "d": d_loss.item(),
        }

    def _target(self, x: Tensor) -> Tensor:
        """The reconstruction the score compares x with: D'(G(x)) or G(x) (``score_with``)."""
        x_hat = self.generator(x)[0]
        return self.dual(x_hat)[0] if self.hparams["score_with"] == "dual" else x_hat

    @torch.no_grad()
    def score(self, x: Tensor) -> Tensor:
        """||x - D'(G(x))||_1 per sample (the paper's AE2 error), or ||x - G(x)||_1 with score_with=generator."""
        return (x - self._target(x)).abs().flatten(1).sum(1)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        return self._target(x)

    @torch.no_grad()
    def anomaly_map(self, x: Tensor) -> Tensor:
        diff = (x - self._target(x)).abs()
        return diff.sum(dim=1) if diff.dim() == 4 else diff
