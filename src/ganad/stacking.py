"""Several seeds of one detector trained as one stacked model (issue 21).

A grid cell's seeds differ only in their seed: the same nets, data and settings. On the small
MLPs of tabular detectors each op is too small to keep a core busy, so K solo steps cost nearly K
times the Python and dispatch overhead of one. Stacked, every ``nn.Linear`` of the K models
becomes one :class:`StackedLinear` whose weight carries a leading seed dimension, and a step of
K batches is one ``baddbmm`` per layer (``benchmarks/seed_stacking_nets.py`` measures the nets;
``benchmarks/seed_stacking.py`` whole trials).

Layout: the stacked model sees the K seeds' batches one after another along the batch dimension
("seed-major": rows ``k*B .. (k+1)*B`` are seed k's batch). Every layer that is not a Linear is
elementwise or works per row (activations, dropout, ``torch.cat`` along features), so it needs no
change; a Linear must know which rows are whose, which equal batches in seed order tell it.

What each seed keeps, and why it is its own run:

* initialisation: the K models are built solo, each under its own seed, and stacked after
  (:func:`stack`), so seed k starts from exactly the weights its solo run starts from;
* data order: the engine draws each seed's permutation from that seed's generator;
* optimiser: Adam is elementwise, so one Adam over stacked parameters is K Adams. Its gradient
  is each seed's own: every loss term of a stackable model is a mean over rows (or over
  per-seed batch statistics), so the stacked loss is the mean over seeds of the seeds' losses,
  and :meth:`ganad.models.base.Model.update` back-propagates K times it, the sum;
* model selection, validation, checkpoints: the engine copies seed k's slice back into a solo
  model (:func:`unstack_into`) and treats it as a solo run.

What is not bit-identical: the latent draws of EGBAD's and AnoGAN's steps are each seed's own
(:meth:`~ganad.models.base.Model.noise` gives seed k a generator started where its solo run's
draws start), but dropout masks come from one stream for the stack, so with dropout on they
differ from a solo run's (same distribution, drawn faster by :class:`StackDropout`); a matrix
product over K seeds may round in another order, and the stack's Adam is the fused kernel (float
rounding, growing over many Adam steps); and logged losses of a stacked run are the mean over
its seeds.

Conv nets are not stacked: ``torch.func.vmap`` over them becomes grouped convolutions, which
ran 0.4-0.8x as fast as K solo steps on the CPU (``benchmarks/seed_stacking_nets.py``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ganad.errors import ConfigError


class StackedLinear(nn.Module):
    """K ``nn.Linear`` layers as one: weight (K, out, in), bias (K, 1, out); rows seed-major.

    The names ``weight`` and ``bias`` are Linear's, so a stacked model's parameter names are its
    solo models' and state dicts map one to one (seed k's tensor is the slice ``[k]``).
    """

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.k = len(layers)
        self.in_features, self.out_features = layers[0].in_features, layers[0].out_features
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in layers]).clone())
        if layers[0].bias is not None:
            self.bias = nn.Parameter(torch.stack([m.bias.detach()[None] for m in layers]).clone())
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        rows = x.view(self.k, -1, self.in_features)
        w = self.weight.transpose(1, 2)
        out = torch.bmm(rows, w) if self.bias is None else torch.baddbmm(self.bias, rows, w)
        return out.view(-1, self.out_features)

    def extra_repr(self) -> str:
        return f"seeds={self.k}, in_features={self.in_features}, out_features={self.out_features}"


class StackDropout(nn.Dropout):
    """Dropout whose masks a stacked model draws about 3x faster on the CPU than ``nn.Dropout``'s
    ``bernoulli_`` (a quarter of a stacked EGBAD step on KDD rows): 16 random bits per element
    (``torch.randint`` over int64, viewed as int16) against a threshold, so an element is kept with
    probability 1 - p to within 1/65,536. A stacked run's masks come from the stack's one stream and
    differ from its solo runs' anyway, so nothing bit-identical is lost; solo models keep
    ``nn.Dropout``, and on a GPU (where ``bernoulli_`` is fast) this is ``nn.Dropout``."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or not 0 < self.p < 1 or x.device.type != "cpu":
            return super().forward(x)
        n, keep = x.numel(), 1.0 - self.p
        bits = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64).view(torch.int16)[:n]
        scale = (bits.view(x.shape) < round(keep * 65536) - 32768).to(x.dtype).mul_(1.0 / keep)
        return x * scale


def why_not_stackable(model: nn.Module) -> str:
    """ "" when ``model`` can be stacked, else why not (its seeds then train one by one)."""
    return why_not_stack(type(model), model.spec.kind)


def why_not_stack(cls: type, kind: str) -> str:
    """ "" when models of class ``cls`` on inputs of ``kind`` ("image" / "tabular") can be stacked, else
    why not: before anything is built, so a grid knows which cells to hand to one worker whole."""
    if getattr(cls, "fits_in_one_pass", False):
        return "it fits in one pass (nothing to stack)"
    if not getattr(cls, "stackable", False):
        return f"{getattr(cls, 'name', cls.__name__)} does not declare its losses seed-safe (stackable)"
    if kind != "tabular":
        return "its nets are convolutional (stacked convolutions were slower than solo ones on the CPU)"
    return ""


def stack(models: Sequence[nn.Module]) -> nn.Module:
    """One model training ``models`` (built solo, one per seed) together; see the module docstring.

    Every Linear becomes a :class:`StackedLinear` of the K models' layers, every other parameter or
    buffer is stacked along a new first dimension (a dual model's centre: (K, nz)); optimisers are
    rebuilt over the stacked parameters with their settings, and a weight average (``ema``) over
    the stacked nets. ``stacked.stack`` is K.
    """
    first = models[0]
    reason = why_not_stackable(first)
    if reason:
        raise ConfigError(f"cannot stack {first.name}: {reason}")
    k = len(models)
    out = copy.deepcopy(first)
    linears = [n for n, m in first.named_modules() if isinstance(m, nn.Linear)]
    for name in linears:
        out.set_submodule(name, StackedLinear([m.get_submodule(name) for m in models]))
    for name in [n for n, m in first.named_modules() if type(m) is nn.Dropout]:
        out.set_submodule(name, StackDropout(first.get_submodule(name).p))
    stacked_names = {f"{n}.{p}" for n in linears for p in ("weight", "bias")}
    with torch.no_grad():
        for name, _ in [*out.named_parameters(), *out.named_buffers()]:
            if name in stacked_names or name.startswith("ema."):
                continue
            _replace(out, name, torch.stack([_get(m, name) for m in models]))
    out.stack = k
    out.noise_generators = [torch.Generator().set_state(m.rng_after_build) for m in models]
    _rebuild_optimizers(first, out)
    ema = getattr(first, "ema", None)
    if ema is not None:
        from ganad.models.base import EMA

        nets = dict.fromkeys(n.split(".", 1)[0] for n, _ in ema._params)
        out.ema = EMA({n: getattr(out, n) for n in nets}, ema.decay)
        if int(ema.steps):
            raise ConfigError("models are stacked before training, not after (their weight averages have steps)")
    return out


def unstack_into(stacked: nn.Module, k: int, solo: nn.Module) -> None:
    """Copy seed ``k``'s weights, buffers and optimiser state from ``stacked`` into ``solo`` (a model
    built like the ones stacked), so the engine can validate, select and checkpoint it as a solo run."""
    with torch.no_grad():
        state = {name: _slice(t, k, solo, name) for name, t in stacked.state_dict().items()}
        solo.load_state_dict(state)
    solo_params = dict(solo.named_parameters())
    stacked_params = dict(stacked.named_parameters())
    for key, opt in stacked.optimizers.items():
        target = solo.optimizers[key]
        by_id = {id(p): n for n, p in stacked_params.items()}
        target.state.clear()
        for group in opt.param_groups:
            for p in group["params"]:
                if p not in opt.state:
                    continue
                name = by_id[id(p)]
                sp = solo_params[name]
                target.state[sp] = {
                    s: (v[k].reshape(sp.shape).clone() if torch.is_tensor(v) and v.dim() > 0 else _copy(v))
                    for s, v in opt.state[p].items()
                }


def reinit_seeds(net: nn.Module, init: Callable[[nn.Module], None], seeds: Sequence[int]) -> None:
    """Re-initialise seeds ``seeds`` of a stacked net with ``init`` (GANomaly's D re-initialisation);
    the other seeds' weights are untouched. Each Linear's slice gets what ``init`` gives a fresh Linear."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, StackedLinear):
                for k in seeds:
                    fresh = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
                    init(fresh)
                    m.weight[k].copy_(fresh.weight)
                    if m.bias is not None:
                        m.bias[k, 0].copy_(fresh.bias)


def _rebuild_optimizers(first: nn.Module, out: nn.Module) -> None:
    names = {id(p): n for n, p in first.named_parameters()}
    params = dict(out.named_parameters())
    rebuilt = {}
    for key, opt in first.optimizers.items():
        if opt.state:
            raise ConfigError("models are stacked before training, not after (their optimisers have state)")
        # Adam as one fused kernel per step: a stacked run is within float rounding of its solo runs anyway
        fused = {"foreach": False, "fused": True} if isinstance(opt, torch.optim.Adam) else {}
        groups = [{**g, "params": [params[names[id(p)]] for p in g["params"]], **fused} for g in opt.param_groups]
        rebuilt[key] = type(opt)(groups, **{**opt.defaults, **fused})
        if fused:
            rebuilt[key].register_step_pre_hook(_contiguous_grads)
    out.optimizers = rebuilt


def _contiguous_grads(opt: torch.optim.Optimizer, *_: object) -> None:
    """Make every gradient contiguous before a fused step: torch 2.13's fused CPU Adam reads a
    non-contiguous gradient (a transposed one, as ``torch.autograd.grad`` may return and EGBAD assigns)
    in memory order, so its update lands on the wrong elements; ``backward()``'s gradients already are."""
    for group in opt.param_groups:
        for p in group["params"]:
            if p.grad is not None and not p.grad.is_contiguous():
                p.grad = p.grad.contiguous()


def _get(model: nn.Module, name: str) -> Tensor:
    owner, _, leaf = name.rpartition(".")
    return getattr(model.get_submodule(owner) if owner else model, leaf)


def _replace(model: nn.Module, name: str, value: Tensor) -> None:
    owner, _, leaf = name.rpartition(".")
    holder = model.get_submodule(owner) if owner else model
    if isinstance(getattr(holder, leaf), nn.Parameter):
        setattr(holder, leaf, nn.Parameter(value, requires_grad=getattr(holder, leaf).requires_grad))
    else:
        holder.register_buffer(leaf, value, persistent=leaf not in holder._non_persistent_buffers_set)


def _slice(t: Tensor, k: int, solo: nn.Module, name: str) -> Tensor:
    """Seed k's part of a stacked tensor, shaped as the solo model's (a Linear bias is (K, 1, out))."""
    want = solo.state_dict()[name]
    if t.dim() == want.dim() + 1 or (t.dim() == want.dim() + 2 and name.endswith("bias")):
        return t[k].reshape(want.shape).clone()
    return t.clone()  # shared by all seeds (an EMA's step count)


def _copy(v: object) -> object:
    return v.clone() if torch.is_tensor(v) else copy.deepcopy(v)
