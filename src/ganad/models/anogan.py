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
result equals a one-at-a-time search. Each sample starts from its own z_1,
as the official KDD baseline does (``gan/run_kdd.py``: ``z_optim`` is a
[batch, latent] variable re-drawn from a truncated normal for every batch),
but drawn from a generator seeded by a hash of the sample's own bytes and
``search_seed`` (``search_start="sample"``): a score is then the same
whichever batch, position or order the sample is scored in, and two
different samples do not share one start. ``search_start="shared"`` is the
former single z_1 for all samples. The optimiser on z is Adam; its step
size follows the official schedule (``piecewise_constant`` with boundaries
300, 400 and values 0.01, 0.001, 0.0005 for Γ = 500), with the milestones
scaled to Γ = ``search_steps`` (``search_schedule="step"``; ``"constant"``
keeps ``search_lr`` throughout). The paper only says "backpropagation".

Training (``gen_loss``; None = "bce" for images, "fm" for rows): the
non-saturating BCE of DCGAN (the paper, the official code) or feature matching (Salimans et al. 2016: the squared
distance of D's mean penultimate features on a real and a generated batch),
which keeps the generator from collapsing onto one mode because it must
match the batch's feature *statistics* instead of fooling D one sample at a
time. Like EGBAD, rows train D and G on two independent shuffles
(``trainx`` / ``trainx_copy`` in ``gan/run_kdd.py``), and the scoring weights
can be an exponential moving average of the trained ones (``ema_decay``,
:class:`ganad.models.base.EMA`; the official KDD baseline uses 0.9999 for G
and, by a quirk of its ``get_getter(gen_ema)`` on D, D's raw weights).
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganad.errors import ConfigError
from ganad.models.base import EMA, Model, frozen, real_fake_bce
from ganad.nets import make_decoder, make_discriminator


class AnoGAN(Model):
    name = "anogan"
    api_name = "AnoGAN"
    stackable = True  # training: row-mean losses, feature matching per seed (batch_mean); the search is per sample
    not_exportable = (
        "its score is a search over z (Γ optimiser steps per sample), not one forward pass; score with ganad "
        "(`ganad export` writes its generator and discriminator instead)"
    )
    paper = "Schlegl et al., Unsupervised Anomaly Detection with Generative Adversarial Networks, IPMI 2017"
    limits: ClassVar[dict] = dict(lam=(0.0, 1.0), ema_decay=(0.0, 0.99999))  # λ: weight of a convex mix
    choices: ClassVar[dict] = dict(
        search_schedule=("step", "constant"),
        search_start=("sample", "shared"),
        discrimination=("fm", "bce"),
        gen_loss=(None, "bce", "fm"),
        init=(None, "xavier", "default"),
    )
    default_selection = "last"  # selecting on validation would cost a latent search per epoch
    # a search per training sample: 10,000 MNIST images took ~2/3 of a CPU trial, 2,000 still ~3/8. The
    # contamination threshold is the 450th of 500 scores: its training flag rate is 10 % ± 1.3 % (binomial)
    train_score_cap = 500
    paired_batches = True  # gan/run_kdd.py: D on trainx[t], G on trainx_copy[t] (used by gen_loss="fm")
    defaults: ClassVar[dict] = dict(
        nz=None,
        width=64,
        lr=2e-4,
        beta1=0.5,
        lam=0.1,
        search_steps=500,
        search_lr=0.01,
        search_schedule="step",
        search_start="sample",
        discrimination="fm",
        search_seed=0,
        val_search_steps=50,
        gen_loss=None,
        ema_decay=None,
        init=None,
        d_layers=None,
        leaky_slope=None,
    )
    meanings: ClassVar[dict[str, str]] = dict(
        nz="images: DCGAN's 100 (Radford et al. 2016); rows: 32 (gan/kdd_utilities.py); None = by kind",
        lr="DCGAN's Adam settings (the official KDD baseline: 1e-5 for 100 epochs)",
        lam='λ, paper Sec. 2.2 ("we set λ = 0.1")',
        search_steps='Γ, paper Sec. 3 ("Γ = 500"); gan/run_kdd.py STEPS_NUMBER = 500',
        search_lr="Adam on z, first step size (gan/run_kdd.py values[0] = 0.01)",
        search_schedule='"step": 0.01 -> 0.001 (at 60 % of Γ) -> 0.0005 (80 %), gan/run_kdd.py; "constant"',
        search_start='"sample": z_1 seeded by the sample\'s bytes; "shared": one z_1 for all',
        discrimination='"fm": feature matching (the paper\'s choice); "bce": σ(D(G(z)), 1)',
        search_seed="seeds the starting z of every sample's search (with the sample's bytes)",
        val_search_steps="cheaper search for validation_score",
        gen_loss='"bce": DCGAN\'s (images); "fm": feature matching (Salimans et al. 2016; rows); None = by kind',
        ema_decay="scoring weights: EMA of G and D; None = 0 (off) for images, see ROW_EMA for rows",
        init='rows: "xavier" (gan/kdd_utilities.py) or "default"; None = "default"',
        d_layers='rows: D widths, e.g. "256-128-128" (gan/kdd_utilities.py); None = "256-128"',
        leaky_slope="rows: D's LeakyReLU slope (code: 0.1); None = 0.2",
    )

    def export_parts(self) -> dict[str, tuple[nn.Module, Tensor, list[str], list[str]]]:
        """G (z -> a sample in model units) and D (a sample -> logit and the features the search's
        discrimination loss compares): what a deployment needs to run the latent search itself."""
        z = torch.zeros(2, self.nz, device=self.device)
        x = torch.zeros(2, *self.spec.shape, device=self.device)
        return {
            "generator": (self.generator, z, ["z"], ["sample"]),
            "discriminator": (self.netd, x, ["sample"], ["logit", "features"]),
        }

    def build(self) -> None:
        h, spec = self.hparams, self.spec
        image = spec.kind == "image"
        if image and any(h[k] is not None for k in ("init", "d_layers", "leaky_slope")):
            raise ConfigError("anogan.init, d_layers and leaky_slope set the row (MLP) nets; images use DCGAN's")
        self.nz = h["nz"] or (100 if image else 32)
        # rows: feature matching, the measured cure for the generator's collapse onto smurf rows on scaled KDD
        # (docs/models.md "AnoGAN's mode collapse on KDD"); images: the paper's DCGAN loss
        self.gen_loss = h["gen_loss"] or ("bce" if image else "fm")
        if image:
            conv = {"width": h["width"]}
            self.generator = make_decoder(spec, self.nz, **conv)
            self.netd = make_discriminator(spec, **conv)
        else:
            init = h["init"] or "default"
            try:
                hidden = tuple(int(w) for w in (h["d_layers"] or "256-128").split("-"))
            except ValueError:
                raise ConfigError(f"anogan.d_layers must be widths like '256-128-128', got {h['d_layers']!r}") from None
            if not hidden or not all(1 <= w <= 4096 for w in hidden):
                raise ConfigError(f"anogan.d_layers widths must be 1..4096, got {h['d_layers']!r}")
            slope = h["leaky_slope"] if h["leaky_slope"] is not None else 0.2
            self.generator = make_decoder(spec, self.nz, init=init)
            self.netd = make_discriminator(spec, hidden=hidden, slope=slope, init=init)
        self.optimizers = {"g": self.adam(self.generator.parameters()), "d": self.adam(self.netd.parameters())}
        decay = h["ema_decay"] if h["ema_decay"] is not None else 0.0
        self.ema = EMA({"generator": self.generator, "netd": self.netd}, decay) if decay > 0 else None

    def train_step(self, x: Tensor, x_g: Tensor | None = None) -> dict[str, float]:
        """One DCGAN step (Goodfellow et al. 2014, non-saturating generator loss), or feature matching for G.

        D sees ``x``; G's step (feature matching compares with real features)
        sees ``x_g``, the other shuffle's batch (``x`` when not given), and
        its own z, as ``gan/run_kdd.py`` feeds ``trainx_copy`` to ``gen_op``.
        """
        z = self.noise(len(x), self.nz)
        fake = self.generator(z)
        logit_real, _ = self.netd(x)
        logit_fake, _ = self.netd(fake.detach())
        d_loss = real_fake_bce(logit_real, logit_fake)
        self.update(d_loss, "d")

        if self.gen_loss == "bce":
            with frozen(self.netd):  # no D weight gradients in G's step
                logit_gen, _ = self.netd(fake)
            g_loss = F.binary_cross_entropy_with_logits(logit_gen, torch.ones_like(logit_gen))
        else:  # feature matching: ||E f(x) - E f(G(z))||², Salimans et al. 2016 Sec. 3.1
            x_g = x if x_g is None else x_g
            with torch.no_grad():
                _, feat_real = self.netd(x_g)
            z_g = self.noise(len(x_g), self.nz)
            with frozen(self.netd):
                _, feat_gen = self.netd(self.generator(z_g))
            g_loss = (self.batch_mean(feat_real) - self.batch_mean(feat_gen)).pow(2).mean()  # per seed stacked
        self.update(g_loss, "g")
        if self.ema is not None:
            self.ema.update()
        return {"d": d_loss.item(), "g": g_loss.item()}

    def sample(self, n: int, seed: int) -> Tensor:
        """G(z) for ``n`` latents z ~ N(0, I) drawn from ``seed`` (scoring weights, eval mode)."""
        return self.sample_prior(self.generator, self.nz, n, seed)

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

    def start_z(self, x: Tensor) -> Tensor:
        """Each sample's starting z_1, a function of the sample's bytes and ``search_seed`` only.

        The official code re-draws ``z_optim`` from a truncated normal
        (|z| <= 2, TF's ``truncated_normal_initializer``) for every batch; here
        each sample's draw is seeded by a BLAKE2 hash of its float32 bytes, so
        it does not depend on which batch or position the sample comes in.
        ``search_start="shared"`` gives every sample the same N(0, I) draw.
        """
        seed = self.hparams["search_seed"]
        if self.hparams["search_start"] == "shared":
            z0 = torch.randn(1, self.nz, generator=torch.Generator().manual_seed(seed))
            return z0.repeat(len(x), 1).to(x.device)
        rows = x.detach().to("cpu", torch.float32).contiguous().flatten(1).numpy()
        out = torch.empty(len(x), self.nz)
        for i, row in enumerate(rows):
            digest = hashlib.blake2b(np.ascontiguousarray(row).tobytes(), digest_size=8, key=str(seed).encode())
            gen = torch.Generator().manual_seed(int.from_bytes(digest.digest(), "little") & (2**63 - 1))
            z = torch.randn(self.nz, generator=gen)
            while (bad := z.abs() > 2).any():  # truncated normal: redraw beyond two standard deviations
                z[bad] = torch.randn(int(bad.sum()), generator=gen)
            out[i] = z
        return out.to(x.device)

    def search_lr_at(self, step: int, steps: int) -> float:
        """Adam's step size on z at 0-based step ``step`` of a ``steps``-step search.

        gan/run_kdd.py: ``piecewise_constant(step, [300, 400], [0.01, 0.001, 0.0005])``
        with Γ = 500, i.e. 0.01 while step <= 300, 0.001 while step <= 400, then
        0.0005. For other Γ the boundaries scale to 60 % and 80 % of Γ, and the
        values keep their ratios to ``search_lr`` (1, 1/10, 1/20).
        """
        lr = self.hparams["search_lr"]
        if self.hparams["search_schedule"] == "constant":
            return lr
        first, second = round(0.6 * steps), round(0.8 * steps)
        return lr if step <= first else lr * 0.1 if step <= second else lr * 0.05

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
            with self.averaged_weights():
                z = self.start_z(x).requires_grad_(True)
                opt = torch.optim.Adam([z], lr=self.search_lr_at(0, steps))
                with torch.no_grad():  # f(x) is the same at every step (D frozen, eval mode): once, not Γ times
                    feat_x = self.netd(x)[1] if self.hparams["discrimination"] == "fm" else None
                with torch.enable_grad():
                    for step in range(steps):
                        for group in opt.param_groups:
                            group["lr"] = self.search_lr_at(step, steps)
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

    @property
    def validation_is_score(self) -> bool:
        """The search starts from each sample's own z_1, so equal step counts give equal scores."""
        return self.hparams["val_search_steps"] == self.hparams["search_steps"]

    def reconstruct(self, x: Tensor) -> Tensor:
        """G(z*) after the latent search."""
        z = self.latent_search(x)[0]
        with torch.no_grad(), self.averaged_weights():
            return self.generator(z)

    def anomaly_map(self, x: Tensor) -> Tensor:
        residual_map = self.latent_search(x)[2]
        return residual_map.sum(dim=1) if residual_map.dim() == 4 else residual_map
