"""Published numbers, kept beside ours in reports. One entry per table we compare with.

Every figure carries its source (paper, table, link), the data set, protocol
and metric it was measured with, and how the paper selected its model,
because numbers from different protocols or selection rules are not
comparable. Only figures we have checked are here; a grid whose paper gives
its numbers only as a bar chart says so instead of transcribing read-off
values.

A value names the paper's model and, in ``params``, the hyper-parameters
that make one of our grid's rows the same detector (EGBAD's two anomaly
scores are one model with ``score_method`` cross-e or fm), so the report can
put each published number on the line of the row it compares with. A value
may carry ``std`` (the paper's spread over its seeds, same scale as
``value``); the report prints it as ``value ± std``.

``split`` names the ganad protocol (:data:`ganad.data.protocols.PROTOCOLS`)
that makes the same train/test split as the paper's numbers, so a reader (and
a test) can tell whether a grid's rows were measured on that split: the same
detector scores very differently on different splits (issue 16: on MNIST
digit 0 a PCA baseline gets AUPRC 0.50 on one-class-anomalous, about 10 %
anomalies, and 0.82 on the survey's split, about 34 %).

A grid names one entry in its ``published:`` field, or a list of them when
it covers several data sets (one entry per data set); each section of the
report shows the entry whose ``dataset`` is its own.
"""

from __future__ import annotations

from typing import Any

#: keys every entry must have (checked by the tests; the report prints them all)
REQUIRED = ("paper", "table", "link", "dataset", "protocol", "split", "metric", "selection", "values")


def _deep_svdd(dataset: str) -> dict[str, Any]:
    """Ruff et al.'s Table 1 for one data set: the same source, protocol and metric for MNIST and CIFAR-10."""
    return {
        "paper": "Ruff et al. 2018, Deep One-Class Classification (ICML 2018, PMLR 80:4393-4402)",
        "table": "Table 1",
        "link": "https://proceedings.mlr.press/v80/ruff18a.html",
        "dataset": dataset,
        "protocol": (
            "one-class-normal (one class normal, the other nine anomalous; trained on the normal class "
            "of the training set, tested on the whole test set)"
        ),
        "split": "one-class-normal",
        "metric": "auroc",
        "selection": "not yet checked against the paper's text (to be stated with the values)",
        # Values go here once checked against a text of Table 1: model "anogan", params {}, class = the
        # normal class index, value = the AnoGAN column's mean AUROC as a fraction, std = its std over seeds.
        "values": [],
        "note": (
            "No value is transcribed yet: no text of Table 1 that could be checked was at hand, and figures "
            "are not copied from memory or from other papers. The paper's AnoGAN column is the authors' own "
            "run of AnoGAN (their architecture and search budget), not ganad's."
        ),
    }


PUBLISHED: dict[str, dict[str, Any]] = {
    "egbad-kdd99": {
        "paper": "Zenati et al. 2018, Efficient GAN-Based Anomaly Detection (arXiv 1802.06222)",
        "table": "Table 1 (KDD99)",
        "link": "https://arxiv.org/abs/1802.06222",
        "dataset": "kdd99",
        "protocol": "kdd (EGBAD: 50/50 split, 'normal.' traffic is the anomaly, threshold at the 80th percentile)",
        "split": "kdd",
        "metric": "f1",
        "selection": "fixed epoch budget; no validation split (numbers reported on the test set)",
        "values": [
            # KDD has no class index (class None). F1 only: the paper's precision and recall are not
            # transcribed until checked against the PDF. To check there too: the AnoGAN row as usually
            # quoted (precision 0.8786, recall 0.8297, F1 0.8865) has an F1 above both its precision
            # and recall, which one run cannot give; the printed F1 is kept as printed.
            {
                "name": "EGBAD, cross-entropy score (σ)",
                "model": "egbad",
                "params": {"score_method": "cross-e"},
                "class": None,
                "value": 0.9372,
            },
            {
                "name": "EGBAD, feature-matching score (FM)",
                "model": "egbad",
                "params": {"score_method": "fm"},
                "class": None,
                "value": 0.9058,
            },
            {
                "name": "AnoGAN (as run by Zenati et al.)",
                "model": "anogan",
                "params": {},
                "class": None,
                "value": 0.8865,
            },
        ],
    },
    "ganomaly-mnist": {
        "paper": "Akcay et al. 2018, GANomaly (arXiv 1805.06725)",
        "table": "Fig. 4a (bar chart only)",
        "link": "https://arxiv.org/abs/1805.06725",
        "dataset": "mnist",
        "protocol": "one-class-anomalous-ganomaly",
        "split": "one-class-anomalous-ganomaly",
        "metric": "auroc",
        "selection": "best test AUROC over 15 epochs (reference code)",
        "values": [],
        "note": "The paper gives MNIST results as a bar chart only; no read-off values are transcribed here.",
    },
    "survey-mnist": {
        "paper": "Di Mattia et al. 2019, A Survey on GANs for Anomaly Detection (arXiv 1906.11632)",
        "table": "Fig. 5 (bar chart only)",
        "link": "https://arxiv.org/abs/1906.11632",
        "dataset": "mnist",
        "protocol": (
            "one class anomalous, the EGBAD code's split, which the survey says it follows: 80 % of the "
            "normal images train, the test set is the other 20 % plus every image of the anomalous class "
            "(about 34 % anomalies)"
        ),
        "split": "one-class-anomalous-ganomaly",
        "metric": "auprc",
        "selection": "as in the survey's toolbox",
        "values": [],
        "note": "The survey gives per-class AUPRC as bar charts only; no read-off values are transcribed here.",
    },
    "deep-svdd-mnist": _deep_svdd("mnist"),
    "deep-svdd-cifar10": _deep_svdd("cifar10"),
}


def lookup(key: str | None) -> dict[str, Any] | None:
    """The entry a grid names in its ``published:`` field, or None (no key, or no such entry)."""
    return PUBLISHED.get(key) if key else None


def keys_of(field: Any) -> list[str] | None:
    """The keys a grid's ``published:`` field names (one key, or a list with one per data set), in order.

    None when the value is not a non-empty string or a non-empty list of them: the grid loader turns
    that into an error naming the file, the report (reading a stored grid) into "nothing published".
    """
    keys = field if isinstance(field, list) else [field]
    if not keys or not all(isinstance(k, str) and k.strip() for k in keys):
        return None
    return keys


def lookup_all(field: Any) -> list[dict[str, Any]]:
    """The entries a grid's ``published:`` field names, in its order; unknown keys skipped."""
    return [e for e in (lookup(k) for k in keys_of(field) or []) if e]


def matches(value: dict[str, Any], model: str, params: dict[str, Any], cls: Any) -> bool:
    """Whether one of our rows (model, every hyper-parameter, class) is the detector a published value is for."""
    if value["model"] != model or value.get("class") != cls:
        return False
    return all(str(params.get(k)) == str(v) for k, v in (value.get("params") or {}).items())
