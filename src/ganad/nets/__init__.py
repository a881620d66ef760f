"""Network building blocks shared by every model.

Models ask for an encoder, a decoder or a discriminator *for an input spec*;
the factories here return a conv net (DCGAN style, sized to any H x W x C) for
images and an MLP for tabular rows, with the same tensor contract either way:

* encoder:       x (N, *shape)  -> z (N, nz)
* decoder:       z (N, nz)      -> x (N, *shape)
* discriminator: x (N, *shape)  -> (logit (N,), features (N, F))
"""

from __future__ import annotations

from torch import nn

from ganad.data.types import InputSpec
from ganad.nets.conv import ConvDecoder, ConvDiscriminator, ConvEncoder, dcgan_init
from ganad.nets.mlp import MLPDecoder, MLPDiscriminator, MLPEncoder


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
    "ConvDecoder",
    "ConvDiscriminator",
    "ConvEncoder",
    "MLPDecoder",
    "MLPDiscriminator",
    "MLPEncoder",
    "dcgan_init",
    "make_decoder",
    "make_discriminator",
    "make_encoder",
]
