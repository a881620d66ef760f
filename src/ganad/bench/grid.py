"""Benchmark grids: a YAML file that expands into ordinary training runs.

A grid file names the experiment, the run fields every trial shares
(``base``), the lists to take the product of (``grid``) and named budgets::

    name: egbad-kdd
    description: EGBAD's KDD Cup 99 table, all four detectors
    published: egbad-kdd99            # key into ganad.bench.published (or a list: one per data set)
    metrics: [precision, recall, f1]  # what the table shows (first = plots)
    base: {dataset: kdd99, protocol: kdd}
    grid:
      model: [ganomaly, anogan, egbad, dual-adversarial]
      seed: [0, 1, 2]
      params.score_method: [fm, cross-e]   # a hyper-parameter list
    model_params:                          # per-model hyper-parameters
      egbad: {lr: 1.0e-5}
    budgets:
      quick: {epochs: 1, max_train: 2000, max_test: 2000}
      cpu: {epochs: 10, model_params: {anogan: {search_steps: 100}}}
      full: {epochs: 100}

A budget may also carry its own ``grid:`` lists, which replace the top-level
ones (a quick budget runs one class and one seed of the same grid).

Grid keys are :class:`~ganad.config.RunConfig` fields (``class`` for the
class index) or ``params.NAME`` for a hyper-parameter. A ``params.*`` value
only applies to models that have that hyper-parameter, so one grid can list
EGBAD's score variants beside models that have none (they run once).

Each trial's id is readable (model, data set, protocol, class, seed) plus a
hash of its whole configuration, so changing anything (a budget, a
hyper-parameter) makes a new trial instead of silently reusing an old one.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganad.bench import published
from ganad.config import FIELDS, LEGACY_VALUES, NOT_IN_TRIAL_ID, RunConfig, from_dict, read_yaml
from ganad.errors import ConfigError

BUDGETS = ("quick", "cpu", "full")
_TOP_KEYS = {"name", "description", "published", "metrics", "base", "grid", "model_params", "budgets", "notes"}


@dataclass(frozen=True)
class Trial:
    """One cell of the grid: a run configuration and where its run folder lives."""

    id: str
    grid: str
    budget: str
    config: RunConfig

    def folder(self, root: Path) -> Path:
        return Path(root) / "trials" / self.id


@dataclass
class GridSpec:
    name: str
    path: Path
    description: str = ""
    published: str | list[str] | None = None  # one key of ganad.bench.published, or one per data set
    metrics: list[str] = field(default_factory=lambda: ["auroc", "auprc"])
    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    model_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    budgets: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: str = ""


def load_grid(path: str | Path) -> GridSpec:
    """Read and check a grid file; errors name the file and the key at fault."""
    p = Path(path)
    d = read_yaml(p, "grid file") or {}
    if not isinstance(d, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level")
    unknown = set(d) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{p}: unknown key(s) {sorted(unknown)}; valid: {sorted(_TOP_KEYS)}")
    grid = d.get("grid") or {}
    if not isinstance(grid, dict):
        raise ConfigError(f"{p}: 'grid' must map field names to lists")
    for k, v in grid.items():
        if not isinstance(v, list) or not v:
            raise ConfigError(f"{p}: grid.{k} must be a non-empty list, got {v!r}")
    pub = d.get("published")
    if pub is not None and published.keys_of(pub) is None:
        raise ConfigError(
            f"{p}: 'published' must be a key of ganad.bench.published or a non-empty list of keys "
            f"(one per data set), got {pub!r}"
        )
    budgets = d.get("budgets") or {}
    if not isinstance(budgets, dict) or not budgets:
        raise ConfigError(f"{p}: 'budgets' must name at least one budget (quick, cpu, full)")
    spec = GridSpec(
        name=str(d.get("name") or p.stem),
        path=p,
        description=str(d.get("description", "")),
        published=d.get("published"),
        metrics=list(d.get("metrics") or ["auroc", "auprc"]),
        base=dict(d.get("base") or {}),
        grid=grid,
        model_params=dict(d.get("model_params") or {}),
        budgets={str(k): dict(v or {}) for k, v in budgets.items()},
        notes=str(d.get("notes", "")),
    )
    for b in spec.budgets:  # expand every budget now, so a typo fails before any training
        expand(spec, b)
    return spec


def expand(spec: GridSpec, budget: str) -> list[Trial]:
    """All trials of one budget, in a stable order (seeds outermost, so early results cover every cell)."""
    from ganad.models import get_model_class  # late: keeps `ganad benchmark --help` fast

    if budget not in spec.budgets:
        raise ConfigError(f"{spec.path}: no budget {budget!r}; this grid has {sorted(spec.budgets)}")
    bud = dict(spec.budgets[budget])
    bud_model_params = bud.pop("model_params", {}) or {}
    grid = dict(spec.grid)
    overrides = bud.pop("grid", {}) or {}  # a budget may shrink the lists (quick: one class, one seed)
    for k, v in overrides.items():
        if not isinstance(v, list) or not v:
            raise ConfigError(f"{spec.path}: budgets.{budget}.grid.{k} must be a non-empty list, got {v!r}")
        grid[k] = v
    keys = sorted(grid, key=lambda k: (k != "seed", k))
    trials: list[Trial] = []
    seen: set[str] = set()
    for values in itertools.product(*(grid[k] for k in keys)):
        fields: dict[str, Any] = {**spec.base, **bud}
        grid_params: dict[str, Any] = {}
        for k, v in zip(keys, values, strict=True):
            if k.startswith("params."):
                grid_params[k.removeprefix("params.")] = v
            else:
                fields[k] = v
        source = f"{spec.path} (budget {budget})"
        cfg = from_dict({k: v for k, v in fields.items() if k != "params"}, source=source)
        try:
            model_cls = get_model_class(cfg.model)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
        params = {
            **(fields.get("params") or {}),
            **(spec.model_params.get(cfg.model) or {}),
            **(bud_model_params.get(cfg.model) or {}),
            **{k: v for k, v in grid_params.items() if k in model_cls.defaults},
        }
        try:
            model_cls.validate_hparams(params)
        except ConfigError as e:
            raise ConfigError(f"{source}: {cfg.model}: {e}") from None
        cfg = cfg.replace(params=params)
        tid = trial_id(cfg, spec.name, budget)
        if tid in seen:  # a params.* list that does not apply to this model: run it once
            continue
        seen.add(tid)
        trials.append(Trial(tid, spec.name, budget, cfg))
    return trials


def trial_id(cfg: RunConfig, grid: str, budget: str) -> str:
    """Readable prefix + hash of everything that defines the trial (not where data lives or which device)."""
    d = {k: v for k, v in cfg.to_dict().items() if k not in NOT_IN_TRIAL_ID}
    for k, default in LEGACY_VALUES.items():  # hashed only when set, so stores made before them keep their ids
        if d.get(k) == default:
            d.pop(k, None)
    h = hashlib.sha1(json.dumps({"grid": grid, "budget": budget, **d}, sort_keys=True, default=str).encode())
    cls = "" if cfg.cls is None else f"-c{cfg.cls}"
    return f"{cfg.model}-{cfg.dataset}-{cfg.protocol}{cls}-s{cfg.seed}-{h.hexdigest()[:8]}"


def matches_only(config: dict[str, Any], only: dict[str, list[str]] | None) -> bool:
    """Does a run config (a dict, as stored with each result) match ``--only FIELD=V1,V2`` filters?

    Values compare as text; ``class`` is the ``cls`` field and ``params.NAME`` a hyper-parameter.
    ``ganad benchmark --only`` picks trials with it and ``ganad results --only`` picks records.
    """
    for key, vals in (only or {}).items():
        if key.startswith("params."):
            value = (config.get("params") or {}).get(key.removeprefix("params."))
        else:
            name = "cls" if key == "class" else key.replace("-", "_")
            if name not in FIELDS:
                raise ConfigError(f"--only: unknown field {key!r}")
            value = config.get(name, FIELDS[name].default)
        if str(value) not in vals:
            return False
    return True
