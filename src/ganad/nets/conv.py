"""DCGAN-style conv nets sized to any H x W x C.

The reference implementations (DCGAN, GANomaly, EGBAD) only accept square
power-of-two images. Here the encoder halves the spatial size with
``Conv2d(4, stride 2, padding 1)`` until the smaller side is at most 4, then a
final convolution with a kernel of exactly the remaining size maps to 1 x 1.
The decoder replays the same size sequence backwards, using ``output_padding``
to hit odd sizes (28 -> 14 -> 7 -> 3 and back), so 28 x 28 MNIST needs no
resize. For 32 and 64 px this is exactly the DCGAN / GANomaly architecture.

Batch norm layers are :class:`BatchNorm2d`, whose running statistics (used in
eval mode, i.e. whenever a model scores) are a bias-corrected moving average;
see its docstring for why the plain PyTorch layer breaks short runs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ganad.errors import ConfigError

MIN_SIZE = 4


def down_sizes(h: int, w: int) -> list[tuple[int, int]]:
    """Spatial sizes after each stride-2 conv, starting with the input size."""
    if min(h, w) < MIN_SIZE + 1:
        raise ConfigError(
            f"image size {h}x{w} is too small for the conv nets: each side must be at least "
            f"{MIN_SIZE + 1} pixels (use a larger --image-size)"
        )
    sizes = [(h, w)]
    while min(h, w) > MIN_SIZE:
        h, w = (h + 2 - 4) // 2 + 1, (w + 2 - 4) // 2 + 1
        sizes.append((h, w))
    return sizes


def dcgan_init(module: nn.Module) -> None:
    """DCGAN weight init (Radford et al. 2016), as in GANomaly's ``weights_init``."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose running statistics are a bias-corrected moving average.

    Why: PyTorch starts the running mean / variance at 0 / 1 and moves them
    10 % of the way to each batch's statistics, so after k training batches
    the initial 1 still weighs 0.9^k in the running variance. With DCGAN
    initialisation (weights N(0, 0.02)) the first normalised layer of a
    conv encoder has a true variance near 5e-4, so after 15 steps (one epoch
    of 1,000 MNIST images) eval mode divides by sqrt(0.19) instead of
    sqrt(5e-4): that layer's outputs shrink about 18x, the latent code and
    every reconstruction become nearly constant, and scores fall below
    chance while train-mode outputs are fine (GANomaly, MNIST class 0
    anomalous: AUROC 0.34 in eval mode, 0.81 with batch statistics). Scoring
    in train mode is no cure (a score would depend on its batch), so the
    average is bias-corrected as Adam corrects its moments: batch k updates
    with weight m / (1 - (1 - m)^k) (m = ``momentum``), the first batch
    replaces the initial values, and the weights converge to the usual m
    within a few hundred steps (0.9^200 < 1e-9): long runs barely change.
    Training-mode outputs and the state-dict layout are PyTorch's, so saved
    models load either way.
    """

    def __init__(self, num_features: int, momentum: float = 0.1, **kwargs: Any) -> None:
        super().__init__(num_features, momentum=momentum, **kwargs)
        self.base_momentum = momentum

    def reset_running_stats(self) -> None:
        super().reset_running_stats()
        self._updates: int | None = None  # Python mirror of num_batches_tracked: no device sync per step

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._updates = None  # re-read from the loaded num_batches_tracked (resume stays bit-for-bit)

    def forward(self, x: Tensor) -> Tensor:
        if self.training and self.track_running_stats and self.base_momentum is not None:
            if self._updates is None:
                self._updates = int(self.num_batches_tracked)
            self._updates += 1
            self.momentum = self.base_momentum / (1.0 - (1.0 - self.base_momentum) ** self._updates)
        return super().forward(x)


class ConvFeatures(nn.Sequential):
    """The downsampling trunk shared by encoder and discriminator.

    Conv(4, 2, 1) + LeakyReLU(0.2), then Conv + BatchNorm + LeakyReLU, doubling
    the channels each time; ``extra_layers`` adds 3x3 convs at the first width
    (GANomaly's ``n_extra_layers``).
    """

    def __init__(self, shape: tuple[int, ...], width: int = 64, extra_layers: int = 0) -> None:
        channels, h, w = shape
        sizes = down_sizes(h, w)
        layers: list[nn.Module] = [
            nn.Conv2d(channels, width, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for _ in range(extra_layers):
            layers += [
                nn.Conv2d(width, width, 3, 1, 1, bias=False),
                BatchNorm2d(width),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        c = width
        for _ in sizes[2:]:
            layers += [
                nn.Conv2d(c, c * 2, 4, 2, 1, bias=False),
                BatchNorm2d(c * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            c *= 2
        super().__init__(*layers)
        self.out_channels = c
        self.out_size = sizes[-1]


class ConvEncoder(nn.Module):
    """x (N, C, H, W) -> z (N, nz)."""

    def __init__(self, shape: tuple[int, ...], nz: int, width: int = 64, extra_layers: int = 0) -> None:
        super().__init__()
        self.features = ConvFeatures(shape, width, extra_layers)
        self.final = nn.Conv2d(self.features.out_channels, nz, self.features.out_size, 1, 0, bias=False)
        self.apply(dcgan_init)

    def forward(self, x: Tensor) -> Tensor:
        return self.final(self.features(x)).flatten(1)


class ConvDecoder(nn.Module):
    """z (N, nz) -> x (N, C, H, W) in [-1, 1] (Tanh), mirroring :class:`ConvEncoder`."""

    def __init__(self, shape: tuple[int, ...], nz: int, width: int = 64, extra_layers: int = 0) -> None:
        super().__init__()
        channels, h, w = shape
        sizes = down_sizes(h, w)
        c = width * 2 ** (len(sizes) - 2)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(nz, c, sizes[-1], 1, 0, bias=False),
            BatchNorm2d(c),
            nn.ReLU(True),
        ]
        # walk back up: sizes[-1] -> sizes[-2] -> ... -> sizes[1]
        for (th, tw), (sh, sw) in zip(sizes[-2:0:-1], sizes[:1:-1], strict=True):
            layers += [
                nn.ConvTranspose2d(c, c // 2, 4, 2, 1, output_padding=(th - 2 * sh, tw - 2 * sw), bias=False),
                BatchNorm2d(c // 2),
                nn.ReLU(True),
            ]
            c //= 2
        for _ in range(extra_layers):
            layers += [nn.Conv2d(c, c, 3, 1, 1, bias=False), BatchNorm2d(c), nn.ReLU(True)]
        (th, tw), (sh, sw) = sizes[0], sizes[1]
        layers += [
            nn.ConvTranspose2d(c, channels, 4, 2, 1, output_padding=(th - 2 * sh, tw - 2 * sw), bias=False),
            nn.Tanh(),
        ]
        self.main = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, z: Tensor) -> Tensor:
        return self.main(z[:, :, None, None])


class ConvDiscriminator(nn.Module):
    """x -> (logit (N,), features (N, F)); GANomaly's NetD with the sigmoid left to the loss.

    ``features`` are the flattened activations of the last conv block, the ones
    GANomaly's adversarial (feature-matching) loss compares.
    """

    def __init__(self, shape: tuple[int, ...], width: int = 64, extra_layers: int = 0) -> None:
        super().__init__()
        self.features = ConvFeatures(shape, width, extra_layers)
        self.classifier = nn.Conv2d(self.features.out_channels, 1, self.features.out_size, 1, 0, bias=False)
        self.apply(dcgan_init)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self.features(x)
        return self.classifier(f).flatten(), f.flatten(1)


def _check() -> None:  # pragma: no cover - manual smoke check
    for s in (8, 16, 28, 32, 64):
        enc, dec = ConvEncoder((1, s, s), 10), ConvDecoder((1, s, s), 10)
        assert dec(enc(torch.zeros(2, 1, s, s))).shape == (2, 1, s, s)
