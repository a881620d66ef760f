"""Conv nets are sized to any H x W x C; MLP nets to any row width."""

from __future__ import annotations

import pytest
import torch

from ganad.data.types import InputSpec
from ganad.errors import ConfigError
from ganad.nets import make_decoder, make_discriminator, make_encoder


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 32, 32), (3, 32, 32), (3, 64, 64), (1, 8, 8), (3, 24, 40)])
def test_conv_round_trip_keeps_the_input_shape(shape):
    spec = InputSpec("image", shape)
    enc, dec, disc = make_encoder(spec, 16, width=8), make_decoder(spec, 16, width=8), make_discriminator(spec, width=8)
    x = torch.rand(3, *shape) * 2 - 1
    z = enc(x)
    assert z.shape == (3, 16)
    x_hat = dec(z)
    assert x_hat.shape == x.shape and x_hat.abs().max() <= 1  # Tanh output, the range of the inputs
    logit, feats = disc(x)
    assert logit.shape == (3,) and feats.shape[0] == 3


def test_mlp_nets_for_rows():
    spec = InputSpec("tabular", (121,))
    z = make_encoder(spec, 32)(torch.rand(5, 121))
    assert z.shape == (5, 32) and make_decoder(spec, 32)(z).shape == (5, 121)
    assert make_discriminator(spec)(torch.rand(5, 121))[0].shape == (5,)


def test_too_small_images_are_a_config_error():
    with pytest.raises(ConfigError, match="image-size"):
        make_encoder(InputSpec("image", (1, 4, 4)), 8)
