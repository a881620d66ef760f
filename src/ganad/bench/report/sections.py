"""The report's section model: one section per grid, budget, data set, protocol and row variant,
with its records, summary rows, labels, chance levels and set-up facts."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ganad.bench import store
from ganad.config import run_variant
from ganad.metrics import chance_over_classes, flagged_share

SELECT_ON = {
    "val": "the epoch with the best validation AUROC (validation split: normal and anomalous, never the test set)",
    "test": "the epoch with the best test AUROC (optimistic; what the papers' reference code does)",
    "last": "the last epoch (no selection)",
}
#: KDD sections lead with the ranking metrics and the best-threshold F1, beside the 80th-percentile F1
_KDD_METRICS = ("auroc", "auprc", "best_f1", "f1")
#: the label of every table's chance row (:func:`ganad.metrics.chance_levels`)
CHANCE = "chance (random score)"
CHANCE_NOTE = (
    "The chance row is what a score that ranks samples at random gets: AUROC 0.5, AUPRC and precision = the "
    "test split's anomaly share a, best F1 = 2a / (1 + a) (flag everything), and with a percentile threshold "
    "that flags a share q, recall q and F1 = 2aq / (a + q)."
)
NEPTUNE_NOTE = (
    "Why F1 can be near 0 at an AUROC of 0.72: f1 is F1 at the 80th-percentile threshold (EGBAD's rule), "
    "which flags 20 % of the test rows as anomalous. In this split 'normal.' traffic is the anomaly (20 % of "
    "the test rows), while neptune attacks, normal here, are 21.7 % of the test rows, more than the 20 % "
    "flagged. A score that ranks every neptune row first (for example the L1 distance to the median smurf "
    "row, where a generator that collapsed onto smurf puts every reconstruction) fills the flagged 20 % with "
    "neptune rows: AUROC about 0.72 but F1 about 0. best_f1 (the best threshold, chosen in hindsight) shows "
    "what the ranking itself could reach; read both beside the chance row."
)


class Skip(Exception):
    """A figure that cannot be drawn here; the message says why, for the page."""


class NoTrials(Skip):
    """The figure reads trial folders and none of them is here (a results folder committed without trials/)."""


ALL = object()  # every class of a section


def is_baseline(model: str) -> bool:
    """Whether a registry model is a non-GAN reference detector (listed after the GAN models)."""
    from ganad.models import MODELS

    return bool(getattr(MODELS.get(model), "baseline", False))


@dataclass
class Section:
    """One (grid, budget, data set, protocol, data variant) block of the report."""

    grid: str
    budget: str
    dataset: str
    protocol: str
    variant: str  # run fields such as ``row_scaling=none``; "" for the default data
    meta: dict[str, Any]
    records: list[dict[str, Any]]
    ok: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    varying: dict[str, list[str]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        extra = f", {self.variant}" if self.variant else ""
        return f"{self.grid or 'results'}: {self.dataset}, {self.protocol}{extra}, budget {self.budget}"

    @property
    def slug(self) -> str:
        parts = [self.grid, self.budget, self.dataset, self.protocol] + ([self.variant] if self.variant else [])
        slug = "-".join(str(x) for x in parts)
        return slug.replace("/", "_").replace("=", "_").replace(", ", "-").replace(" ", "_")

    def figure(self, kind: str) -> str:
        """The file name of this section's figure of one kind (bars, curves, ...) in figures/."""
        return f"{self.slug}-{kind}.png"

    def label(self, r: dict[str, Any]) -> str:
        """Model name plus the hyper-parameters that vary between its rows here (the fixed ones are in the set-up)."""
        keys = self.varying.get(r["model"], [])
        p = r.get("params") or {}
        v = ", ".join(f"{k}={p.get(k)}" for k in keys)
        return f"{r['model']} ({v})" if v else r["model"]

    def labels(self) -> list[str]:
        """Row labels: GAN models before baseline detectors, each in the grid's model order, then by variant."""
        seen = {self.label(r): r["model"] for r in self.rows}
        rank = {m: i for i, m in enumerate(self.order)}
        return sorted(seen, key=lambda lab: (is_baseline(seen[lab]), rank.get(seen[lab], len(rank)), lab))

    def chance(self, cls: Any = ALL) -> dict[str, float]:
        """The chance level of each metric, from the test splits' anomaly share (one class, or all classes).

        Over several classes it is the mean of the per-class levels, as the
        "mean over classes" of a detector is.
        """
        shares: dict[Any, list[float]] = defaultdict(list)
        flagged = set()
        for r in self.ok:
            share = (r.get("metrics") or {}).get("anomaly_ratio")
            if (cls is ALL or r["cls"] == cls) and share is not None:
                shares[r["cls"]].append(float(share))
                flagged.add(flagged_share(r.get("threshold_rule")))
        levels = chance_over_classes(shares, flagged.pop() if len(flagged) == 1 else None)
        if levels:  # a defect type's AUROC (good images vs that defect's) is an AUROC: chance 0.5
            levels.update({m: levels["auroc"] for m in self.metrics if m.startswith(store.DEFECT)})
        return levels

    def classes(self) -> list[Any]:
        return sorted({r["class"] for r in self.rows}, key=lambda c: (c is None, str(c)))

    def partial(self) -> set[str]:
        """Row labels finished for fewer classes than the section has: their class means are not comparable."""
        n = len(self.classes())
        have: dict[str, set[Any]] = defaultdict(set)
        for r in self.rows:
            have[self.label(r)].add(r["class"])
        return {lab for lab, cs in have.items() if len(cs) < n}


def grid_meta(root: Path, name: str) -> dict[str, Any]:
    """The newest grid file the store keeps for ``name`` (its description, metrics and published key)."""
    snapshots = store.grid_snapshots(root, name)
    if not snapshots:
        return {}
    try:
        return yaml.safe_load(snapshots[-1].read_text()) or {}
    except yaml.YAMLError:
        return {}


def sections_of(root: Path, records: list[dict[str, Any]]) -> list[Section]:
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        key = (r.get("grid", ""), r.get("budget", ""), r["dataset"], r["protocol"], run_variant(r.get("config") or {}))
        groups[key].append(r)
    out = []
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        grid, budget, dataset, protocol, variant = key
        meta = grid_meta(root, grid)
        sec = Section(grid, budget, dataset, protocol, variant, meta, groups[key])
        sec.ok = [r for r in sec.records if r.get("status") == "ok"]
        sec.failed = [r for r in sec.records if r.get("status") != "ok"]
        sec.metrics = list(meta.get("metrics") or ["auroc", "auprc"])
        if dataset == "kdd99":
            sec.metrics = [*_KDD_METRICS, *[m for m in sec.metrics if m not in _KDD_METRICS]]
        # data with defect types (MVTec AD layout): each defect's image AUROC gets a column
        sec.metrics += sorted({f"{store.DEFECT}{d}" for r in sec.ok for d in r.get("per_defect_auroc") or {}})
        sec.rows = store.summarise(sec.ok, sec.metrics)
        grid_models = (meta.get("grid") or {}).get("model") or []
        sec.order = [str(m) for m in grid_models] if isinstance(grid_models, list) else []
        by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in sec.ok:
            by_model[r["model"]].append(store.params_diff(r))
        for model, diffs in by_model.items():
            keys = sorted({k for d in diffs for k in d})
            sec.varying[model] = [k for k in keys if len({json.dumps(d.get(k), default=str) for d in diffs}) > 1]
        out.append(sec)
    return out


# -- the page ----------------------------------------------------------------------------------


def machine_of(r: dict[str, Any]) -> str:
    """One record's machine: device, CPU, usable cores, torch threads and platform (what sets its times)."""
    e = r.get("environment") or {}
    parts = [f"device {r.get('device') or '?'}"]
    if e.get("gpu"):
        parts.append(str(e["gpu"]))
    if e.get("cpu"):
        parts.append(f"CPU {e['cpu']}, {e.get('cpu_count', '?')} usable cores, {_threads(e.get('torch_threads'))}")
    else:
        parts.append("CPU and thread count not recorded (records older than that field)")
    if e.get("platform"):
        parts.append(str(e["platform"]))
    return "; ".join(parts)


def machines_of(recs: list[dict[str, Any]]) -> list[str]:
    """The distinct machines of the records, in order of first appearance."""
    return list(dict.fromkeys(machine_of(r) for r in recs))


def machine_name(i: int) -> str:
    """Short names (A, B, ...) that the time table uses for the set-up's machines."""
    return chr(ord("A") + i) if i < 26 else f"M{i + 1}"


def machine_text(recs: list[dict[str, Any]]) -> str:
    """The set-up's "measured on" text; with several machines each is named (A, B, ...) for the time table."""
    seen = machines_of(recs)
    if len(seen) <= 1:
        return seen[0] if seen else "not recorded"
    return " + ".join(f"{machine_name(i)}: {t}" for i, t in enumerate(seen))


def _threads(n: Any) -> str:
    return "? threads" if n is None else f"{n} thread" + ("" if n == 1 else "s")
