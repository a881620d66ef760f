"""Registry of detectors: name -> model class. Adding a model = its file + one line here."""

from __future__ import annotations

from ganad.errors import ConfigError
from ganad.models.anogan import AnoGAN
from ganad.models.base import Model
from ganad.models.baselines import IForestBaseline, KNNBaseline, MedianL1Baseline, PCABaseline
from ganad.models.dual_adversarial import DualAdversarialAE
from ganad.models.egbad import EGBAD
from ganad.models.ganomaly import GANomaly

MODELS: dict[str, type[Model]] = {
    GANomaly.name: GANomaly,
    AnoGAN.name: AnoGAN,
    EGBAD.name: EGBAD,
    DualAdversarialAE.name: DualAdversarialAE,
    # non-GAN baselines (fitted in one pass with scikit-learn), beside every result
    PCABaseline.name: PCABaseline,
    KNNBaseline.name: KNNBaseline,
    IForestBaseline.name: IForestBaseline,
    MedianL1Baseline.name: MedianL1Baseline,
}


def get_model_class(name: str) -> type[Model]:
    """Look up a detector by its registry name, with the valid names in the error."""
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model '{name}'; choose one of: {', '.join(MODELS)}") from None


__all__ = ["MODELS", "Model", "get_model_class"]
