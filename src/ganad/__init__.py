"""ganad: anomaly detection with generative adversarial networks.

Detectors in the scikit-learn / PyOD style::

    from ganad import GANomaly
    det = GANomaly(epochs=15).fit(X_normal)
    scores = det.decision_function(X_new)   # higher = more anomalous
    labels = det.predict(X_new)             # 1 = anomaly
    det.save("my-model"); det = ganad.load("my-model")
"""

from ganad.detector import Detector, get_detector_class, load
from ganad.models import MODELS
from ganad.version import __version__

# One class per registered model (GANomaly, AnoGAN, EGBAD, DualAdversarialAE, ...).
for _name, _cls in MODELS.items():
    globals()[_cls.api_name] = get_detector_class(_name)

__all__ = ["MODELS", "__version__", "Detector", "get_detector_class", "load", *(c.api_name for c in MODELS.values())]
