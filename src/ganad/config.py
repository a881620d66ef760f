"""One configuration object shared by the CLI, the Python API and benchmarks.

A :class:`RunConfig` is what a run *is*: which detector with which
hyper-parameters, on which data split, with which training budget. It is
written into every run folder as ``config.yaml`` so a run can be repeated and
versioned; CLI flags and YAML files fill in the same fields, and unknown
fields are rejected rather than ignored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ganad.errors import ConfigError

#: model input size per built-in image data set (GANomaly and EGBAD resize MNIST to 32)
DEFAULT_IMAGE_SIZE = {"mnist": 32, "fashion-mnist": 32, "cifar10": 32, "digits": 16}
#: threshold rule per protocol when none is given (EGBAD: 80th percentile on KDD)
DEFAULT_THRESHOLD = {"kdd": "percentile:80"}


#: the threshold rules and what each means (``ganad train --help`` shows them; ``ganad.metrics`` resolves them)
THRESHOLD_RULES = {
    "percentile:P": "P-th percentile of the evaluated test scores (EGBAD's rule; kdd's default, P = 80)",
    "contamination:C": "the (1 - C) quantile of the training scores, 0 < C < 0.5 (PyOD's threshold_)",
    "val-f1": "the best-F1 threshold on labelled validation data (default; contamination:0.1 without it)",
}


def check_threshold_rule(rule: str) -> tuple[str, float | None]:
    """``(kind, argument)`` of a threshold rule, or a ConfigError naming what is wrong with it.

    Called when a config is read, so ``--threshold bogus`` or ``percentile:200`` stops a run
    before training, not after it.
    """
    if not isinstance(rule, str):
        raise ConfigError(f"threshold rule must be text such as percentile:80, got {rule!r}")
    kind, _, arg = rule.partition(":")
    if kind == "val-f1" and not arg:
        return kind, None
    if kind == "val-f1" or kind not in {k.partition(":")[0] for k in THRESHOLD_RULES}:
        raise ConfigError(f"unknown threshold rule '{rule}'; use {', '.join(THRESHOLD_RULES)}")
    try:
        val = float(arg)
    except ValueError:
        raise ConfigError(f"threshold rule '{rule}': '{arg}' is not a number") from None
    if kind == "percentile" and not 0 <= val <= 100:
        raise ConfigError(f"threshold rule '{rule}': the percentile must be in [0, 100]")
    if kind == "contamination" and not 0 < val < 0.5:
        raise ConfigError(f"threshold rule '{rule}': contamination must be in (0, 0.5)")
    return kind, val


@dataclass
class RunConfig:
    """Everything that defines one training run.

    ``params`` holds the model's hyper-parameters (see ``ganad models``);
    missing ones take the paper's values.
    """

    model: str = "ganomaly"
    params: dict[str, Any] = field(default_factory=dict)
    dataset: str = "digits"
    protocol: str = "one-class-anomalous"
    cls: int | None = 0
    seed: int = 0
    # data options
    data_dir: str | None = None
    image_size: int | None = None
    channels: int | None = None
    row_scaling: str = "minmax"  # tabular rows: "minmax" or "none" (raw, as EGBAD's code trains on KDD)
    val_fraction: float = 0.1
    max_train: int | None = None
    max_test: int | None = None
    train_dir: str | None = None  # dataset "folder": normal training images
    test_dir: str | None = None  # dataset "folder": normal/ and anomalous/ subfolders
    train_csv: str | None = None  # dataset "csv"
    test_csv: str | None = None
    label_column: str | None = None
    anomaly_value: str | None = None
    # training budget
    epochs: int = 15
    steps: int | None = None
    batch_size: int = 64
    device: str = "auto"
    select_on: str | None = None
    # evaluation
    threshold: str | None = None
    maps: int = 16  # heat maps written for the top-scored test samples

    def resolved_image_size(self) -> int | None:
        return self.image_size if self.image_size is not None else DEFAULT_IMAGE_SIZE.get(self.dataset)

    def resolved_threshold(self) -> str:
        return self.threshold or DEFAULT_THRESHOLD.get(self.protocol, "val-f1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> RunConfig:
        return from_dict({**self.to_dict(), **changes})


FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}
#: run fields added after the first results were stored, with their default. A record at the
#: default is the same trial as before the field existed (its id does not change); any other
#: value is a variant of the data, kept apart in tables and reports.
VARIANT_FIELDS: dict[str, Any] = {name: FIELDS[name].default for name in ("row_scaling",)}


def run_variant(config: dict[str, Any]) -> str:
    """``"row_scaling=none"``-style text for the variant fields a stored config sets, "" for none."""
    return ", ".join(f"{k}={config[k]}" for k, d in VARIANT_FIELDS.items() if config.get(k, d) != d)


#: fields with a closed set of values, checked when the config is read (before any data is loaded)
ROW_SCALINGS = ("minmax", "none")  # how tabular rows are scaled before training and scoring
CHOICES = {"row_scaling": ROW_SCALINGS}
ALIASES = {"class": "cls"}
#: inclusive bounds of numeric run fields (None = unbounded on that side), checked when a config is
#: read so that a typo fails with one line before any data is loaded or any folder is made. A seed
#: must fit torch's 64-bit seed; a test set needs two samples; an image side above 4096 pixels is
#: a typo here (the memory check refuses what does not fit anyway).
BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "seed": (0, 2**63 - 1),
    "cls": (0, None),
    "image_size": (1, 4096),
    "channels": (1, 3),
    "val_fraction": (0.0, 0.9),
    "max_train": (2, None),
    "max_test": (2, None),
    "epochs": (1, None),
    "steps": (1, None),
    "batch_size": (2, None),
    "maps": (0, None),
}


def from_dict(d: dict[str, Any], *, source: str = "config") -> RunConfig:
    """Build a RunConfig from a mapping, naming any unknown or mistyped field."""
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: expected a mapping of fields, got {type(d).__name__}")
    kw: dict[str, Any] = {}
    for key, val in d.items():
        name = ALIASES.get(key, key).replace("-", "_")
        if name not in FIELDS:
            raise ConfigError(f"{source}: unknown field '{key}'; valid fields: {', '.join(sorted(FIELDS))}")
        kw[name] = _coerce(name, val, source)
        _check_bounds(name, kw[name], source)
    if kw.get("threshold") is not None:  # checked here, so a bad rule stops a run before its training
        try:
            check_threshold_rule(kw["threshold"])
        except ConfigError as e:
            raise ConfigError(f"{source}: field 'threshold': {e}") from None
    return RunConfig(**kw)


def _check_bounds(name: str, val: Any, source: str) -> None:
    if name not in BOUNDS or val is None:
        return
    lo, hi = BOUNDS[name]
    if (lo is not None and val < lo) or (hi is not None and val > hi) or val != val:  # val != val: NaN
        rng = f"between {lo} and {hi}" if lo is not None and hi is not None else f">= {lo}"
        if name == "channels":
            rng = "1 or 3"
        raise ConfigError(f"{source}: field '{name}' must be {rng}, got {val!r}")


def _coerce(name: str, val: Any, source: str) -> Any:
    default = RunConfig.__dataclass_fields__[name]
    typ = str(default.type)
    if val is None:
        if "None" in typ:
            return None
        raise ConfigError(f"{source}: field '{name}' may not be empty")
    try:
        if name == "params":
            if not isinstance(val, dict):
                raise TypeError
            return dict(val)
        if typ.startswith("int"):
            if isinstance(val, bool) or (isinstance(val, float) and not val.is_integer()):
                raise TypeError
            return int(val)
        if typ.startswith("float"):
            return float(val)
        if typ.startswith("str"):
            val = str(val)
            if name in CHOICES and val not in CHOICES[name]:
                raise ConfigError(f"{source}: field '{name}' must be one of {', '.join(CHOICES[name])}, got {val!r}")
            return val
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: field '{name}' must be {typ.replace(' | None', '')}, got {val!r}") from None
    return val


#: the largest YAML file ganad reads (configs and grids are a few KB; a bigger one is not ours)
MAX_YAML_BYTES = 1 << 20


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors and aliases.

    Aliases let ten short lines expand to a billion list items (the "billion laughs"): a
    ``config.yaml`` built that way made ``ganad evaluate`` run 50 s and end in a MemoryError.
    No ganad config or grid needs them, so an alias is one error naming the file.
    """

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed here", event.start_mark)
        return super().compose_node(parent, index)


def read_yaml(path: str | Path, what: str = "config file") -> Any:
    """Parse a YAML file ganad reads (config, grid): bounded in size, no aliases, one error naming the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: {what} not found")
    if p.stat().st_size > MAX_YAML_BYTES:
        raise ConfigError(f"{p}: {p.stat().st_size} bytes; a {what} is at most {MAX_YAML_BYTES} bytes")
    try:
        return yaml.load(p.read_text(), Loader=_NoAliasLoader)
    except yaml.MarkedYAMLError as e:  # one line: where, and what (PyYAML's own text spans several)
        mark = e.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ConfigError(f"{p}: not valid YAML ({where}{e.problem or e.context})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not valid YAML ({' '.join(str(e).split())})") from None
    except RecursionError:
        raise ConfigError(f"{p}: not a {what} (nested too deeply)") from None


def load_yaml(path: str | Path) -> RunConfig:
    """Read a RunConfig from YAML; the error names the file and the field at fault."""
    return from_dict(read_yaml(path) or {}, source=str(path))


def dump_yaml(cfg: RunConfig) -> str:
    d = {("class" if k == "cls" else k): v for k, v in cfg.to_dict().items()}
    return yaml.safe_dump(d, sort_keys=False)
