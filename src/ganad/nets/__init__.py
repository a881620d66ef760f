"""Network building blocks shared by every model.

Models ask for an encoder, a decoder or a discriminator *for an input spec*;
the factories here return a conv net (DCGAN style, sized to any H x W x C) for
images and an MLP for tabular rows, with the same tensor contract either way:

* encoder:       x (N, *shape)  -> z (N, nz)
* decoder:       z (N, nz)      -> x (N, *shape)
* discriminator: x (N, *shape)  -> (logit (N,), features (N, F))
"""

from __future__ import annotations

import torch
from torch import nn

from ganad.data.types import InputSpec
from ganad.nets.conv import ConvDecoder, ConvDiscriminator, ConvEncoder, ConvFeatures, dcgan_init
from ganad.nets.mlp import INITS, MLPDecoder, MLPDiscriminator, MLPEncoder, xavier_init


def make_encoder(spec: InputSpec, nz: int, width: int = 64, **kw) -> nn.Module:
    """An encoder from inputs of ``spec`` to a flat latent of size ``nz``."""
    if spec.kind == "image":
        return ConvEncoder(spec.shape, nz, width=width, **kw)
    return MLPEncoder(spec.shape[0], nz, **kw)


def make_decoder(spec: InputSpec, nz: int, width: int = 64, **kw) -> nn.Module:
    """A decoder (generator) from a flat latent of size ``nz`` to inputs of ``spec``."""
    if spec.kind == "image":
        return ConvDecoder(spec.shape, nz, width=width, **kw)
    return MLPDecoder(spec.shape[0], nz, **kw)


def make_discriminator(spec: InputSpec, width: int = 64, **kw) -> nn.Module:
    """A discriminator returning a logit and its penultimate features."""
    if spec.kind == "image":
        return ConvDiscriminator(spec.shape, width=width, **kw)
    return MLPDiscriminator(spec.shape[0], **kw)


__all__ = [
    "INITS",
    "ConvDecoder",
    "ConvDiscriminator",
    "ConvEncoder",
    "JointDiscriminator",
    "MLPDecoder",
    "MLPDiscriminator",
    "MLPEncoder",
    "dcgan_init",
    "make_decoder",
    "make_discriminator",
    "make_encoder",
    "xavier_init",
]


class JointDiscriminator(nn.Module):
    """D(x, z) on joint pairs, as BiGAN / EGBAD use it: (x, z) -> (logit (N,), features (N, F)).

    The x branch is the conv trunk (images) or one dense layer (rows); the z
    branch one dense layer; both are concatenated and passed through one
    dense layer whose output are the features used for feature matching
    (EGBAD's ``intermediate_layer``). LeakyReLU(0.1) and dropout as in EGBAD's
    code (``bigan/{mnist,kdd}_utilities.py``). ``init="dcgan"`` (the default,
    N(0, 0.02)) or ``"xavier"`` (Xavier-uniform kernels, zero biases: the KDD
    code's ``init_kernel = xavier_initializer()``; the conv trunk of images
    keeps the DCGAN init either way).
    """

    def __init__(
        self,
        spec: InputSpec,
        nz: int,
        *,
        width: int = 64,
        z_width: int = 512,
        joint_width: int = 1024,
        dropout: float = 0.5,
        init: str = "dcgan",
    ) -> None:
        super().__init__()
        if init not in ("dcgan", "xavier"):
            raise ValueError(f"unknown init {init!r}; 'dcgan' or 'xavier'")
        act = nn.LeakyReLU(0.1)
        if spec.kind == "image":
            trunk = ConvFeatures(spec.shape, width)
            # from the trunk's sizes, not a dummy forward pass: one in training mode would
            # count as a batch-norm update (zero statistics, num_batches_tracked = 1)
            x_dim = trunk.out_channels * trunk.out_size[0] * trunk.out_size[1]
            self.x_branch = nn.Sequential(trunk, nn.Flatten(), nn.Dropout(dropout))
        else:
            x_dim = z_width
            self.x_branch = nn.Sequential(nn.Linear(spec.shape[0], z_width), act, nn.Dropout(dropout))
        self.z_branch = nn.Sequential(nn.Linear(nz, z_width), act, nn.Dropout(dropout))
        self.joint = nn.Sequential(nn.Linear(x_dim + z_width, joint_width), act, nn.Dropout(dropout))
        self.classifier = nn.Linear(joint_width, 1)
        self.apply(dcgan_init)
        if init == "xavier":  # dense layers only: after dcgan_init so the draws of the conv trunk stay the same
            self.apply(xavier_init)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.joint(torch.cat([self.x_branch(x), self.z_branch(z)], dim=1))
        return self.classifier(f).flatten(), f
