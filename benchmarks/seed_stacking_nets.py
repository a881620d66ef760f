"""Issue 21's first measurement: is one step of K stacked seeds faster than K solo steps, per net?

Before the engine trains a grid cell's seeds as one model, this measures what stacking can give
on this machine for ganad's own nets: one Adam step (forward, backward, update) of K copies of a
net, run (a) one after another as K solo nets, (b) stacked with ``torch.func.stack_module_state``
+ ``vmap`` over ``functional_call`` (the generic route: any net, batch norm included), and, for
the MLPs, (c) as hand-stacked linear layers (one ``baddbmm`` per layer for all K seeds). Each
variant runs the same number of steps, interleaved round by round so a change of load hits all
alike; one JSON line per (net, K) with the median milliseconds per step of K seeds and the
speed-ups over solo.

    python benchmarks/seed_stacking_nets.py --out docs/results/seed_stacking_nets.json
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _common import machine
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from ganad.nets.conv import ConvDecoder, ConvDiscriminator
from ganad.nets.mlp import MLPDecoder, MLPDiscriminator


class VmapStack(nn.Module):
    """K copies of a net as one module: parameters (K, ...), inputs (K*B, ...) seed-major."""

    def __init__(self, nets: list[nn.Module]) -> None:
        super().__init__()
        params, buffers = stack_module_state(nets)
        self.k, self.names = len(nets), list(params)
        self.params = nn.ParameterList([nn.Parameter(params[n].detach().clone()) for n in self.names])
        self.buffers_ = dict(buffers)
        base = copy.deepcopy(nets[0])
        for m in base.modules():  # ganad's BatchNorm2d counts its updates in Python: start the count
            if hasattr(m, "_updates"):
                m._updates = int(m.num_batches_tracked)
        self.base = [base.to("meta")]  # a list: not a sub-module, its meta weights are never trained

    def forward(self, x: Tensor) -> Tensor:
        def one(p: list[Tensor], b: dict[str, Tensor], xi: Tensor) -> Tensor:
            return functional_call(self.base[0], ({**dict(zip(self.names, p, strict=True)), **b},), (xi,))

        out = vmap(one, randomness="different")(list(self.params), self.buffers_, x.unflatten(0, (self.k, -1)))
        out = out[0] if isinstance(out, tuple) else out
        return out.flatten(0, 1)


class BmmLinear(nn.Module):
    """K linear layers as one: weight (K, in, out), input (K*B, in) seed-major."""

    def __init__(self, layers: list[nn.Linear]) -> None:
        super().__init__()
        self.k = len(layers)
        self.weight = nn.Parameter(torch.stack([m.weight.detach().t() for m in layers]))
        self.bias = nn.Parameter(torch.stack([m.bias.detach()[None] for m in layers]))

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x.view(self.k, -1, x.shape[-1]), self.weight).flatten(0, 1)


def bmm_stack(nets: list[nn.Module]) -> nn.Module:
    """Hand-stacked copy of an MLP: each Linear becomes a :class:`BmmLinear`, the rest is elementwise."""
    net = copy.deepcopy(nets[0])
    linears = [[m for m in n.modules() if isinstance(m, nn.Linear)] for n in nets]
    names = [name for name, m in net.named_modules() if isinstance(m, nn.Linear)]
    for i, name in enumerate(names):
        parent, _, leaf = name.rpartition(".")
        setattr(net.get_submodule(parent) if parent else net, leaf, BmmLinear([ls[i] for ls in linears]))
    return _FirstOutput(net)


class _FirstOutput(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        out = self.net(x)
        return out[0] if isinstance(out, tuple) else out


NETS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], bool]] = {
    # name: (builder, input shape per sample, MLP)
    "mlp-discriminator-kdd": (lambda: MLPDiscriminator(121), (121,), True),
    "mlp-decoder-kdd": (lambda: MLPDecoder(121, 32), (32,), True),
    "conv-discriminator-32": (lambda: ConvDiscriminator((1, 32, 32)), (1, 32, 32), False),
    "conv-decoder-32": (lambda: ConvDecoder((1, 32, 32), 100), (100,), False),
}


def measure(name: str, k: int, batch: int, steps: int, rounds: int) -> dict:
    make, shape, is_mlp = NETS[name]
    torch.manual_seed(0)
    nets = [make() for _ in range(k)]
    x = torch.randn(k * batch, *shape)
    solo = [_FirstOutput(copy.deepcopy(n)) for n in nets]
    variants: dict[str, tuple[list[nn.Module], list[Tensor]]] = {
        "solo": (solo, list(x.split(batch))),
        "vmap": ([VmapStack(nets)], [x]),
    }
    if is_mlp:
        variants["bmm"] = ([bmm_stack(nets)], [x])
    opts = {v: [torch.optim.Adam(m.parameters(), foreach=True) for m in ms] for v, (ms, _) in variants.items()}

    def step(v: str) -> None:
        ms, xs = variants[v]
        for m, o, xi in zip(ms, opts[v], xs, strict=True):
            o.zero_grad(set_to_none=True)
            m(xi).pow(2).mean().backward()
            o.step()

    times: dict[str, list[float]] = {v: [] for v in variants}
    for v in variants:
        step(v)  # warm-up
    for _ in range(rounds):
        for v in variants:
            t = time.perf_counter()
            for _ in range(steps):
                step(v)
            times[v].append((time.perf_counter() - t) / steps * 1000)
    ms = {v: statistics.median(t) for v, t in times.items()}
    out = {"net": name, "k": k, "batch": batch, **{f"{v}_ms_per_step": round(t, 3) for v, t in ms.items()}}
    out.update({f"{v}_speedup": round(ms["solo"] / t, 2) for v, t in ms.items() if v != "solo"})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", default="3,10", help="stack sizes")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    lines = []
    for name, (_, _, is_mlp) in NETS.items():
        for k in (int(v) for v in args.ks.split(",")):
            line = measure(name, k, args.batch, steps=40 if is_mlp else 3, rounds=args.rounds)
            print(json.dumps(line), flush=True)
            lines.append(line)
    if args.out:
        args.out.write_text(json.dumps({"machine": machine(args.threads), "lines": lines}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
