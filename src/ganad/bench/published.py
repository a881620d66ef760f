"""Published numbers, kept beside ours in reports. One entry per table we compare with.

Every figure carries its source (paper, table), the protocol and metric it
was measured with, and how the paper selected its model, because numbers
from different protocols or selection rules are not comparable. Only
figures we have checked are here; a grid whose paper gives its numbers only
as a bar chart says so instead of transcribing read-off values.
"""

from __future__ import annotations

from typing import Any

PUBLISHED: dict[str, dict[str, Any]] = {
    "egbad-kdd99": {
        "paper": "Zenati et al. 2018, Efficient GAN-Based Anomaly Detection (arXiv 1802.06222)",
        "table": "Table 1 (KDD99)",
        "dataset": "kdd99",
        "protocol": "kdd (EGBAD: 50/50 split, 'normal.' traffic is the anomaly, threshold at the 80th percentile)",
        "metric": "f1",
        "selection": "fixed epoch budget; no validation split (numbers reported on the test set)",
        "values": {
            # model label -> {class: value}; KDD has no class index (None)
            "egbad (cross-e score)": {None: 0.9372},
            "egbad (fm score)": {None: 0.9058},
            "anogan": {None: 0.8865},
        },
    },
    "ganomaly-mnist": {
        "paper": "Akcay et al. 2018, GANomaly (arXiv 1805.06725)",
        "table": "Fig. 4a (bar chart only)",
        "dataset": "mnist",
        "protocol": "one-class-anomalous-ganomaly",
        "metric": "auroc",
        "selection": "best test AUROC over 15 epochs (reference code)",
        "values": {},
        "note": "The paper gives MNIST results as a bar chart only; no read-off values are transcribed here.",
    },
    "survey-mnist": {
        "paper": "Di Mattia et al. 2019, A Survey on GANs for Anomaly Detection (arXiv 1906.11632)",
        "table": "Fig. 5 (bar chart only)",
        "dataset": "mnist",
        "protocol": "one-class-anomalous",
        "metric": "auprc",
        "selection": "as in the survey's toolbox",
        "values": {},
        "note": "The survey gives per-class AUPRC as bar charts only; no read-off values are transcribed here.",
    },
}


def lookup(key: str | None) -> dict[str, Any] | None:
    return PUBLISHED.get(key) if key else None
