"""MLP nets for tabular rows (KDD Cup 99, user CSV files).

Encoder and decoder widths follow EGBAD's KDD networks (Zenati et al. 2018,
code ``kdd_utilities.py``): encoder 64 -> nz, decoder 64 -> 128 -> D with ReLU
and a linear output. Two differences from that code, kept because every MLP
model shares these nets: the encoder's LeakyReLU slope is 0.2 (the code's
0.1) and weights keep PyTorch's default init (the code's Xavier-uniform);
neither explains EGBAD's KDD results (docs/models.md). The stand-alone
discriminator (GANomaly, AnoGAN, dual AE) is 256 -> 128 with LeakyReLU(0.2)
and dropout 0.2; EGBAD's joint D(x, z) is ``JointDiscriminator`` in
``ganad.nets``, with the code's 128 units, LeakyReLU(0.1) and dropout 0.2.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from torch import Tensor, nn


def mlp(sizes: Sequence[int], act: nn.Module, dropout: float = 0.0, bias: bool = True) -> nn.Sequential:
    """Linear layers of ``sizes`` with ``act`` (and dropout) between them, none after.

    ``bias=False`` drops every layer's bias: a net that must not be able to
    learn a constant function (Deep SVDD's argument, used by the dual model's
    centre loss) needs that.
    """
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(pairwise(sizes)):
        layers.append(nn.Linear(a, b, bias=bias))
        if i < len(sizes) - 2:
            layers.append(act)
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """x (N, D) -> z (N, nz); ``bias=False`` for an encoder without bias terms (see :func:`mlp`)."""

    def __init__(self, dim: int, nz: int, hidden: Sequence[int] = (64,), bias: bool = True) -> None:
        super().__init__()
        self.main = mlp([dim, *hidden, nz], nn.LeakyReLU(0.2), bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x)


class MLPDecoder(nn.Module):
    """z (N, nz) -> x (N, D); linear output, like EGBAD's KDD generator."""

    def __init__(self, dim: int, nz: int, hidden: Sequence[int] = (64, 128)) -> None:
        super().__init__()
        self.main = mlp([nz, *hidden, dim], nn.ReLU())

    def forward(self, z: Tensor) -> Tensor:
        return self.main(z)


class MLPDiscriminator(nn.Module):
    """x (N, D) -> (logit (N,), features (N, F))."""

    def __init__(self, dim: int, hidden: Sequence[int] = (256, 128), dropout: float = 0.2) -> None:
        super().__init__()
        self.features = nn.Sequential(mlp([dim, *hidden], nn.LeakyReLU(0.2), dropout), nn.LeakyReLU(0.2))
        self.classifier = nn.Linear(hidden[-1], 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self.features(x)
        return self.classifier(f).flatten(), f
