"""The model contract: what makes "a new detector = one file + a registry line".

A model file holds everything specific to one detector: which networks it
builds (from :mod:`ganad.nets`), how they are wired, its loss terms with the
paper's weights, one optimisation step and its anomaly score. Everything that
is the same for all detectors (epoch loop, device, seeding, progress,
checkpoints, validation, model selection) lives once in :mod:`ganad.engine`.

Inputs reaching a model are already preprocessed float32 tensors on the
model's device: images in [-1, 1] shaped (N, C, H, W), rows min-max scaled
(fitted on training rows) shaped (N, D).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ganad.data.types import InputSpec
from ganad.errors import ConfigError

#: Bounds of the hyper-parameters that size the networks, for every model that has them.
#: Far above any published setting, they stop a typo (``--set width=64000``) or an
#: edited model.json (``"extra_layers": 1e300``) before it builds a network that
#: fills the memory or loops for ever; the allocation itself would only fail deep in torch.
SIZE_LIMITS: dict[str, tuple[float, float]] = {"nz": (1, 65536), "width": (1, 4096), "extra_layers": (0, 64)}
#: Bounds of the optimiser settings every model shares: Adam refuses lr < 0 and beta1 >= 1 with a
#: traceback deep in torch (after the run folder exists); NaN fails every bound.
OPTIMISER_LIMITS: dict[str, tuple[float, float]] = {"lr": (1e-12, float("inf")), "beta1": (0.0, 0.9999)}


#: what the hyper-parameters many models share mean (a model's ``meanings`` may say more)
COMMON_MEANINGS: dict[str, str] = {
    "nz": "latent size",
    "width": "network width: channels of the first conv layer, or units of the first MLP layer",
    "extra_layers": "extra conv layers at full resolution (DCGAN's / GANomaly's --extralayers)",
    "lr": "Adam learning rate",
    "beta1": "Adam's beta1",
}


class Model(nn.Module):
    """Base class of every detector.

    Subclasses set ``name`` (registry key), ``api_name`` (Python class name in
    :mod:`ganad`), ``paper`` and ``defaults`` (every hyper-parameter with the
    paper's value), and implement :meth:`build`, :meth:`train_step` and
    :meth:`score`. Hyper-parameters not in ``defaults`` are rejected, so a typo
    in a config never silently falls back to a default.
    """

    name: ClassVar[str]
    api_name: ClassVar[str]
    paper: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    #: inclusive (low, high) bounds of numeric hyper-parameters, beside :data:`SIZE_LIMITS`
    #: (which every model with those names shares); checked by :meth:`validate_hparams`.
    limits: ClassVar[dict[str, tuple[float, float]]] = {}
    #: the allowed values of choice hyper-parameters (None among them if "by input kind" is allowed);
    #: checked by :meth:`validate_hparams`, shown by ``ganad models NAME``
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {}
    #: one line per hyper-parameter: what it does and where its default comes from (paper, code, ours)
    meanings: ClassVar[dict[str, str]] = {}
    #: how the engine picks the epoch to keep when validation data exists;
    #: expensive scorers (AnoGAN's latent search) may prefer "last".
    default_selection: ClassVar[str] = "val"
    #: True for the non-GAN reference detectors (PCA, k-NN, ...): reports list them after the GAN models
    baseline: ClassVar[bool] = False
    #: True: ``train_step(x, x2)`` gets a second batch ``x2`` from an independent
    #: shuffle of the same training set each step (the engine draws a second
    #: permutation per epoch). EGBAD's and AnoGAN's official code train D on one
    #: shuffled copy (``trainx``) and G / E on another (``trainx_copy``).
    paired_batches: ClassVar[bool] = False
    #: True for detectors fitted in one pass over the whole training tensor (the non-GAN
    #: baselines): the engine then calls :meth:`fit_normal` once instead of the epoch loop.
    fits_in_one_pass: ClassVar[bool] = False
    #: why ``ganad export`` cannot put this model's score in a single graph ("" = it can): a latent
    #: search, or a scorer outside torch (:mod:`ganad.export`)
    not_exportable: ClassVar[str] = ""
    #: True when :meth:`train_step` is seed-safe, so :mod:`ganad.stacking` may train several seeds as one
    #: model: every loss term is a mean over rows (or over :meth:`batch_mean` statistics), gradients go
    #: through :meth:`update` (or are scaled by ``self.stack``), and re-initialisations through
    #: :meth:`reinit_below`. Rows of a stacked step are the seeds' batches one after another.
    stackable: ClassVar[bool] = False
    #: at most this many training samples are scored after fitting (``Detector.decision_scores_``, the
    #: contamination threshold, ``predict_proba``'s range), a seeded sample of them; None = all. For
    #: scorers that optimise per sample (AnoGAN's Γ-step search), where scoring 10,000 training images
    #: costs more than training.
    train_score_cap: ClassVar[int | None] = None

    def __init__(self, spec: InputSpec, **hparams: Any) -> None:
        super().__init__()
        self.spec = spec
        self.hparams: dict[str, Any] = self.validate_hparams(hparams)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.stack = 1  # seeds trained together (ganad.stacking sets K); 1 for every solo model
        self.build()
        # where the global RNG stands once the weights are drawn, i.e. where a solo run's training draws
        # (z, dropout) start: a stacked run gives each seed a generator from here (:meth:`noise`)
        self.rng_after_build = torch.get_rng_state()
        self.noise_generators: list[torch.Generator] = []

    @classmethod
    def validate_hparams(cls, hparams: dict[str, Any]) -> dict[str, Any]:
        """All hyper-parameters, with values coerced to the type of the paper default.

        Unknown names and values that cannot be read as the default's type are
        a ConfigError naming the hyper-parameter, so ``--set lr=1e-3`` (a string
        to YAML) works and ``--set lr=fast`` fails before any folder is made.
        """
        unknown = sorted(set(hparams) - set(cls.defaults))
        if unknown:
            raise ConfigError(
                f"unknown hyper-parameter(s) for model '{cls.name}': {', '.join(unknown)}; "
                f"valid: {', '.join(sorted(cls.defaults))}"
            )
        out = dict(cls.defaults)
        for key, val in hparams.items():
            out[key] = _coerce_like(cls.defaults[key], val, f"{cls.name}.{key}")
        limits = {**SIZE_LIMITS, **OPTIMISER_LIMITS, **cls.limits}
        for key, val in out.items():
            if key in limits and val is not None:
                lo, hi = limits[key]
                if isinstance(val, bool) or not isinstance(val, int | float):
                    raise ConfigError(f"hyper-parameter '{cls.name}.{key}' must be a number, got {val!r}")
                if not lo <= val <= hi:
                    raise ConfigError(
                        f"hyper-parameter '{cls.name}.{key}' must be between {lo:g} and {hi:g}, got {val!r}"
                    )
        for key, allowed in cls.choices.items():
            if out[key] not in allowed:
                shown = ", ".join(repr(a) for a in allowed)
                raise ConfigError(f"hyper-parameter '{cls.name}.{key}' must be one of {shown}, got {out[key]!r}")
        return out

    @classmethod
    def describe_hparams(cls) -> list[dict[str, Any]]:
        """Each hyper-parameter's name, default, allowed values and meaning (``ganad models NAME``)."""
        limits = {**SIZE_LIMITS, **OPTIMISER_LIMITS, **cls.limits}
        rows = []
        for key, default in cls.defaults.items():
            if key in cls.choices:
                allowed = " | ".join("None" if a is None else repr(a) for a in cls.choices[key])
            elif key in limits:
                lo, hi = limits[key]
                allowed = f"{lo:g} .. {hi:g}" + (" or None" if default is None else "")
            else:
                allowed = type(default).__name__ if default is not None else "any"
            meaning = "; ".join(m for m in (COMMON_MEANINGS.get(key), cls.meanings.get(key)) if m)
            rows.append({"name": key, "default": default, "allowed": allowed, "meaning": meaning})
        return rows

    # -- to implement ---------------------------------------------------------
    def build(self) -> None:
        """Create the networks (sized to ``self.spec``) and ``self.optimizers``."""
        raise NotImplementedError

    def train_step(self, x: Tensor) -> dict[str, float]:
        """One optimisation step on a batch of normal samples; returns every loss term by name."""
        raise NotImplementedError

    def prepare(self, x_train: Tensor) -> None:
        """Called once with the whole preprocessed training set before the first step (not on resume).

        For what must come from all training data rather than one batch, e.g.
        a Deep SVDD style centre fixed by a forward pass over the training set
        (the dual model). The default does nothing.
        """

    def score(self, x: Tensor) -> Tensor:
        """Anomaly score per sample (higher = more anomalous). Never changes weights."""
        raise NotImplementedError

    def fit_normal(self, x: Tensor) -> dict[str, float]:
        """Fit on all normal training samples at once (``fits_in_one_pass`` models); returns numbers to log."""
        raise NotImplementedError

    def anomaly_map(self, x: Tensor) -> Tensor | None:
        """Per-pixel / per-feature anomaly map (e.g. |x - x_hat|), if the model has one."""
        return None

    def reconstruct(self, x: Tensor) -> Tensor | None:
        """The model's picture of x as a normal sample (x_hat), for reports; None if it has none."""
        return None

    def sample(self, n: int, seed: int) -> Tensor | None:
        """``n`` samples from the generator's prior, G(z) with z drawn from a generator seeded by ``seed``.

        For :mod:`ganad.diagnostics`: a generator that covers only part of
        the training data (mode collapse) shows it here, before any score
        does. None if the model has no prior to sample from (then the
        diagnostics use reconstructions of training samples instead).
        """
        return None

    def export_parts(self) -> dict[str, tuple[nn.Module, Tensor, list[str], list[str]]]:
        """The nets a deployment can run when the score is not one graph (``not_exportable``):
        name -> (module, example input, input names, output names). ``ganad export`` writes one file
        each. Empty (the default) when there is nothing useful to hand over."""
        return {}

    def validation_score(self, x: Tensor) -> Tensor:
        """Score used for model selection on validation data; cheaper variants may override."""
        return self.score(x)

    @property
    def validation_is_score(self) -> bool:
        """Whether :meth:`validation_score` gives :meth:`score`'s values, so the validation scores of the
        kept epoch serve the threshold too instead of being computed again (``Detector.validation_scores_``)."""
        return type(self).validation_score is Model.validation_score

    # -- shared helpers -------------------------------------------------------
    def averaged_weights(self) -> AbstractContextManager[None]:
        """The weight averages (``self.ema``, an :class:`EMA`) in place for the enclosed block; no-op without one."""
        ema = getattr(self, "ema", None)
        return ema.applied() if ema is not None else nullcontext()

    @torch.no_grad()
    def sample_prior(self, generator: nn.Module, nz: int, n: int, seed: int) -> Tensor:
        """``generator(z)`` for ``n`` latents z ~ N(0, I) drawn from ``seed``, as the model scores (averaged
        weights, eval mode): what a GAN with a prior returns from :meth:`sample` for mode-coverage checks."""
        z = torch.randn(n, nz, generator=torch.Generator().manual_seed(seed)).to(self.device)
        was_training = self.training
        self.eval()
        try:
            with self.averaged_weights():
                return generator(z)
        finally:
            self.train(was_training)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def adam(self, params, lr_key: str = "lr") -> torch.optim.Adam:
        """Adam with the model's ``lr`` and ``beta1`` (the DCGAN setting all four papers use).

        ``foreach=True`` updates all of a net's tensors in a few batched kernels
        instead of a Python loop over tensors: bit-identical on the CPU
        (tests/test_hot_path.py), measurably faster for the small MLPs whose
        step is mostly overhead, and what torch already picks on CUDA.
        (``fused=True`` is faster still but not bit-identical, so only stacked runs use it,
        :mod:`ganad.stacking`.)
        """
        return torch.optim.Adam(
            params, lr=self.hparams[lr_key], betas=(self.hparams.get("beta1", 0.5), 0.999), foreach=True
        )

    def update(self, loss: Tensor, *names: str) -> None:
        """Back-propagate ``loss`` and step the named optimisers (gradients cleared first, as None).

        Stacked (``self.stack`` = K seeds), a row-mean loss is the mean of the seeds' losses, so K
        times it is their sum, whose gradient for seed k's weights is exactly seed k's own.
        """
        for n in names:
            self.optimizers[n].zero_grad(set_to_none=True)
        self.seed_sum(loss).backward()
        for n in names:
            self.optimizers[n].step()

    def noise(self, n: int, dim: int) -> Tensor:
        """``n`` latent draws z ~ N(0, I) of size ``dim`` for a training step. Solo, from the global RNG;
        stacked, each seed's n/K rows from its own generator, started where its solo run's draws start,
        so a seed's z are its solo run's (while dropout, which shares the stack's stream, is off)."""
        if self.stack == 1:
            return torch.randn(n, dim, device=self.device)
        per = n // self.stack
        return torch.cat([torch.randn(per, dim, generator=g) for g in self.noise_generators]).to(self.device)

    def seed_sum(self, loss: Tensor) -> Tensor:
        """The loss to back-propagate: ``loss`` itself solo; stacked, K times the row-mean loss, the sum
        of the seeds' losses (for models that call ``torch.autograd.grad`` themselves, like EGBAD)."""
        return loss if self.stack == 1 else loss * self.stack

    def batch_mean(self, t: Tensor) -> Tensor:
        """The mean over the batch of each row statistic (feature matching's E[f(x)]): (F,) solo,
        (K, F) stacked, one mean per seed's batch, never across seeds."""
        return t.mean(0) if self.stack == 1 else t.unflatten(0, (self.stack, -1)).mean(1)

    def reinit_below(self, net: nn.Module, init: Any, loss: Tensor, threshold: float, per_seed: Any) -> float:
        """Re-initialise ``net`` with ``init`` when ``loss`` fell below ``threshold`` (GANomaly's D);
        returns the share of seeds re-initialised. Stacked, ``per_seed()`` gives each seed's loss
        (K,) and only the seeds below the threshold start again."""
        if self.stack == 1:
            if loss.item() < threshold:
                net.apply(init)
                return 1.0
            return 0.0
        from ganad.stacking import reinit_seeds

        low = [k for k, v in enumerate(per_seed().tolist()) if v < threshold]
        reinit_seeds(net, init, low)
        return len(low) / self.stack

    def per_row(self, t: Tensor, n: int) -> Tensor:
        """A per-model tensor (a dual model's centre c) for each of ``n`` rows: ``t`` itself solo (it
        broadcasts); stacked, seed k's ``t[k]`` repeated over its n/K rows."""
        return t if self.stack == 1 else t.repeat_interleave(n // self.stack, dim=0)

    def seed_means(self, rows: Tensor) -> Tensor:
        """Per-row values (K*B,) -> each seed's mean (K,) (one value for a solo model)."""
        return rows.reshape(self.stack, -1).mean(1)

    def describe(self) -> dict[str, Any]:
        """JSON-able description stored beside the weights."""
        return {"model": self.name, "hparams": self.hparams, "spec": self.spec.to_dict()}


@contextmanager
def frozen(*nets: nn.Module) -> Iterator[None]:
    """Build the graph of the enclosed forward passes without weight gradients for ``nets``.

    In a generator step the discriminator (and any other net the generator's
    loss passes through) only has to pass gradients back to its input; with
    its weights requiring grad, ``backward`` would also compute their
    gradients, which the next ``update`` of that net throws away (it clears
    them to None first). Freezing them skips the weight-gradient half of the
    backward of those nets: every gradient that is used keeps its exact value
    (tests/test_hot_path.py), and a training step does 5-11 % fewer FLOPs
    (benchmarks/throughput.py, ``before-edits``). Batch-norm statistics still
    update as before (they do not depend on ``requires_grad``).
    """
    params = [p for net in nets for p in net.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


class EMA(nn.Module):
    """Bias-corrected exponential moving average of some nets' parameters, for scoring.

    EGBAD's and AnoGAN's official code (``bigan/run_kdd.py``, ``gan/run_kdd.py``)
    keep ``tf.train.ExponentialMovingAverage`` copies of the weights (decay
    0.9999 on KDD, 0.999 on MNIST) and score with them. TF's average starts at
    the initial weights: after t steps the init still weighs decay^t, i.e.
    0.67 after 4 000 steps at 0.9999, so at the few-thousand-step budgets
    ganad runs the TF average would be mostly the untrained network. Here the
    accumulator starts at 0 and is divided by (1 - decay^t), as Adam corrects
    its moments (Kingma & Ba 2015, Alg. 1):

        m_t = decay · m_{t-1} + (1 - decay) · w_t,   m_0 = 0
        w_ema = m_t / (1 - decay^t)  =  Σ_i decay^(t-i) w_i / Σ_i decay^(t-i)

    a weighted mean of the trained weights only (w_ema = w_1 after one step);
    after many steps (decay^t -> 0) it equals TF's average.

    The accumulators and the step count are buffers of this module, so they
    are part of the owning model's ``state_dict``: saved in safetensors,
    restored on load and on resume, kept with the selected epoch. The tracked
    nets are not sub-modules of this one (their weights are not saved twice).
    Batch-norm running statistics are not averaged (TF's EMA covers trainable
    variables only).
    """

    def __init__(self, nets: dict[str, nn.Module], decay: float) -> None:
        super().__init__()
        self.decay = float(decay)
        # a plain dict: nn.Module only registers Module values set as attributes
        self._params: list[tuple[str, nn.Parameter]] = [
            (f"{net_name}.{n}", p) for net_name, net in nets.items() for n, p in net.named_parameters()
        ]
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))
        for name, p in self._params:
            self.register_buffer(self._key(name), torch.zeros_like(p, memory_format=torch.contiguous_format))
        self._active = False

    @staticmethod
    def _key(name: str) -> str:
        return "avg__" + name.replace(".", "__")  # buffer names may not contain dots

    def _avgs(self) -> list[Tensor]:
        return [getattr(self, self._key(name)) for name, _ in self._params]

    @torch.no_grad()
    def update(self) -> None:
        """m <- decay·m + (1 - decay)·w for every tracked parameter; call after each optimiser step."""
        torch._foreach_lerp_(self._avgs(), [p.detach() for _, p in self._params], 1.0 - self.decay)
        self.steps += 1

    @torch.no_grad()
    def averaged(self) -> dict[str, Tensor]:
        """The bias-corrected averages m_t / (1 - decay^t) by parameter name (the raw weights before any step)."""
        t = int(self.steps)
        if t == 0:
            return {name: p.detach().clone() for name, p in self._params}
        correction = 1.0 - self.decay**t
        return {name: a / correction for (name, _), a in zip(self._params, self._avgs(), strict=True)}

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Run the enclosed code with the averaged weights in place of the trained ones, restored after.

        Re-entrant (a scorer calling another scorer swaps once). Before the
        first step, or with decay 0, the weights are left as they are.
        """
        if self._active or int(self.steps) == 0 or self.decay == 0.0:
            yield
            return
        with torch.no_grad():
            avg = self.averaged()
            saved = [p.detach().clone() for _, p in self._params]
            for name, p in self._params:
                p.copy_(avg[name])
        self._active = True
        try:
            yield
        finally:
            self._active = False
            with torch.no_grad():
                for (_, p), w in zip(self._params, saved, strict=True):
                    p.copy_(w)


def real_fake_bce(logit_real: Tensor, logit_fake: Tensor, reduction: str = "mean") -> Tensor:
    """Standard GAN discriminator loss: BCE(D(real), 1) + BCE(D(fake), 0), on logits for stability
    (``reduction="none"``: per row, for per-seed values of a stacked model)."""
    return F.binary_cross_entropy_with_logits(
        logit_real, torch.ones_like(logit_real), reduction=reduction
    ) + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake), reduction=reduction)


def _coerce_like(default: Any, val: Any, name: str) -> Any:
    """``val`` as the type of ``default`` (bool, int, float, str, tuple); None defaults take anything."""
    if default is None or val is None:
        return val
    try:
        if isinstance(default, bool):
            if isinstance(val, str) and val.lower() in ("true", "false", "yes", "no", "1", "0"):
                return val.lower() in ("true", "yes", "1")
            if isinstance(val, bool | int):
                return bool(val)
            raise ValueError
        if isinstance(default, int):
            f = float(val)
            if not f.is_integer() or isinstance(val, bool):
                raise ValueError
            return int(f)
        if isinstance(default, float):
            if isinstance(val, bool):
                raise ValueError
            return float(val)
        if isinstance(default, str):
            return str(val)
        if isinstance(default, tuple | list):
            return tuple(_coerce_like(default[0], v, name) if default else v for v in val)
    except (TypeError, ValueError):
        raise ConfigError(f"hyper-parameter '{name}' must be {type(default).__name__}, got {val!r}") from None
    return val
