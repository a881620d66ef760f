"""MLP nets for tabular rows (KDD Cup 99, user CSV files).

Encoder and decoder widths follow EGBAD's KDD networks (Zenati et al. 2018,
code ``kdd_utilities.py``): encoder 64 -> nz, decoder 64 -> 128 -> D with ReLU
and a linear output. The defaults (LeakyReLU slope 0.2, PyTorch's default
init) are what GANomaly and the dual model were built and measured with; the
official EGBAD / AnoGAN KDD code (``bigan/kdd_utilities.py``,
``gan/kdd_utilities.py``) uses slope 0.1 and Xavier-uniform kernels with zero
biases (TF's ``xavier_initializer`` and ``tf.layers.dense``'s zero bias), which
EGBAD and AnoGAN ask for with ``slope=0.1, init="xavier"``. The stand-alone
discriminator (GANomaly, AnoGAN, dual AE) is 256 -> 128 with dropout 0.2
(AnoGAN's official KDD D is 256 -> 128 -> 128: ``hidden=(256, 128, 128)``);
EGBAD's joint D(x, z) is ``JointDiscriminator`` in ``ganad.nets``, with the
code's 128 units, LeakyReLU(0.1) and dropout 0.2.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from torch import Tensor, nn

#: weight initialisations the MLP nets accept: PyTorch's default (Kaiming-uniform,
#: what every model was measured with before) or Xavier-uniform kernels with zero
#: biases, TF's ``xavier_initializer`` as EGBAD's and AnoGAN's KDD code use it
INITS = ("default", "xavier")


def xavier_init(m: nn.Module) -> None:
    """Xavier-uniform (Glorot & Bengio 2010) kernels and zero biases for Linear layers (TF's dense defaults)."""
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def apply_init(net: nn.Module, init: str) -> None:
    """Re-initialise ``net``'s Linear layers with ``init`` (one of :data:`INITS`)."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; one of {INITS}")
    if init == "xavier":
        net.apply(xavier_init)


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

    def __init__(
        self,
        dim: int,
        nz: int,
        hidden: Sequence[int] = (64,),
        *,
        slope: float = 0.2,
        init: str = "default",
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.main = mlp([dim, *hidden, nz], nn.LeakyReLU(slope), bias=bias)
        apply_init(self, init)

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x)


class MLPDecoder(nn.Module):
    """z (N, nz) -> x (N, D); linear output, like EGBAD's KDD generator."""

    def __init__(self, dim: int, nz: int, hidden: Sequence[int] = (64, 128), *, init: str = "default") -> None:
        super().__init__()
        self.main = mlp([nz, *hidden, dim], nn.ReLU())
        apply_init(self, init)

    def forward(self, z: Tensor) -> Tensor:
        return self.main(z)


class MLPDiscriminator(nn.Module):
    """x (N, D) -> (logit (N,), features (N, F))."""

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (256, 128),
        dropout: float = 0.2,
        *,
        slope: float = 0.2,
        init: str = "default",
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(mlp([dim, *hidden], nn.LeakyReLU(slope), dropout), nn.LeakyReLU(slope))
        self.classifier = nn.Linear(hidden[-1], 1)
        apply_init(self, init)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self.features(x)
        return self.classifier(f).flatten(), f
