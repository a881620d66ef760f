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

from ganad.data.transforms import MAX_IMAGE_SIDE, ROW_SCALINGS
from ganad.errors import ConfigError
from ganad.sinks import SINKS

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


#: the groups of ``ganad train --help``, in order; each setting below names its group
GROUPS = ("what to train", "data", "budget and selection")


def setting(
    default: Any,
    help: str,
    *,
    group: str = "data",
    bounds: tuple[float | None, float | None] | None = None,
    choices: tuple[Any, ...] | None = None,
    api: bool = False,
    flag: str | None = None,
    cli: bool = True,
    show_default: bool = True,
    legacy: Any = dataclasses.MISSING,
    variant: bool = False,
) -> Any:
    """Declare one run setting: its default, one-line help, group, bounds or choices.

    This is the one home of each setting. The CLI's flags (``ganad train --help``), the
    config and grid readers' checks, the Python API's common constructor parameters
    (``api=True``: ``ganad.GANomaly(epochs=...)``), the engine's defaults and ``ganad models
    NAME`` all read it, so adding a setting is one line here. ``bounds`` are inclusive (None =
    open on that side); ``flag`` is the CLI name when it is not the field's (``--class``).
    ``legacy`` marks a field added after results were first stored: the value those records
    implicitly had. A trial at that value keeps the id it had before the field existed.
    ``variant`` fields change the data itself (raw rows, another MVTec category): tables and
    reports keep their values apart and label them.
    """
    meta = dict(
        help=help,
        group=group,
        bounds=bounds,
        choices=choices,
        api=api,
        flag=flag,
        cli=cli,
        show_default=show_default,
        legacy=legacy,
        variant=variant,
    )
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=meta)
    return field(default=default, metadata=meta)


def _help_lists() -> tuple[str, str]:
    from ganad.data.protocols import PROTOCOLS
    from ganad.data.sources import SOURCES, USER_SOURCES

    return ", ".join((*SOURCES, *USER_SOURCES)), ", ".join(PROTOCOLS[:4])


_DATASETS, _PROTOCOLS = _help_lists()


@dataclass
class RunConfig:
    """Everything that defines one training run.

    ``params`` holds the model's hyper-parameters (see ``ganad models``);
    missing ones take the paper's values. Each field is declared once, with
    :func:`setting`; see that function for what derives from it.
    """

    model: str = setting("ganomaly", "detector: see `ganad models`", group="what to train")
    params: dict[str, Any] = setting({}, "model hyper-parameters", group="what to train", cli=False)  # noqa: RUF009 (a default_factory)
    dataset: str = setting(
        "digits", f"{_DATASETS} (digits is built in and offline; folder: your images, csv: your rows)"
    )
    protocol: str = setting("one-class-anomalous", f"the split: {_PROTOCOLS}")
    cls: int | None = setting(0, "the class index the protocol singles out", bounds=(0, None), flag="class")
    seed: int = setting(
        0, "seeds the split, the weights and the shuffling", bounds=(0, 2**63 - 1), api=True
    )  # torch's 64-bit seed
    data_dir: str | None = setting(
        None, "offline folder with the original data files (default: $GANAD_DATA_DIR, then the download cache)"
    )
    image_size: int | None = setting(
        None,
        "resize images to this size (default 32 for MNIST and CIFAR, 16 for digits; None keeps their size)",
        bounds=(1, MAX_IMAGE_SIDE),
        api=True,
    )
    channels: int | None = setting(None, "convert folder images to 1 or 3 channels", choices=(1, 3))
    row_scaling: str = setting(
        "minmax",
        "tabular rows: min-max scale on the training rows (minmax) or keep them raw (none, what EGBAD's "
        "published code does on KDD)",
        choices=ROW_SCALINGS,
        api=True,
        legacy="minmax",
        variant=True,
    )
    val_fraction: float = setting(0.1, "share of the training side kept for validation", bounds=(0.0, 0.9))
    max_train: int | None = setting(None, "use at most this many training samples (seeded)", bounds=(2, None))
    max_val: int | None = setting(
        2000,
        "use at most this many validation samples (stratified, seeded; they are scored every epoch); null = all",
        bounds=(2, None),
        legacy=None,  # no cap: the shipped grids pin max_val: null to keep their stored trials
    )
    max_test: int | None = setting(
        None, "use at most this many test samples (stratified, seeded)", bounds=(2, None)
    )  # a test set needs two samples
    train_dir: str | None = setting(None, "dataset folder: folder of normal training images")
    test_dir: str | None = setting(None, "dataset folder: folder with normal/ and anomalous/ subfolders")
    mask_dir: str | None = setting(
        None,
        "dataset folder: masks of the anomalous test images, MVTec AD's naming (anomalous/a/x.png -> "
        "MASK_DIR/a/x_mask.png); adds pixel AUROC and AUPRO",
        legacy=None,
    )
    train_csv: str | None = setting(None, "dataset csv: training CSV (rows labelled normal are used)")
    test_csv: str | None = setting(None, "dataset csv: labelled test CSV")
    category: str | None = setting(
        None,
        "dataset mvtec: the category (bottle, cable, ...) in --data-dir or the downloaded tree",
        legacy=None,
        variant=True,
    )
    label_column: str | None = setting(None, "dataset csv: name of the label column")
    anomaly_value: str | None = setting(None, "dataset csv: label value that means anomalous")
    # training budget
    epochs: int = setting(15, "training epochs", group="budget and selection", bounds=(1, None), api=True)
    steps: int | None = setting(
        None, "total optimisation steps; caps epochs", group="budget and selection", bounds=(1, None), api=True
    )
    batch_size: int = setting(
        64, "batch size (batch norm needs 2)", group="budget and selection", bounds=(2, None), api=True
    )
    device: str = setting(
        "auto", "auto (CUDA when present), cpu, cuda, cuda:1 ...", group="budget and selection", api=True
    )
    select_on: str | None = setting(
        None,
        "keep the epoch with the best validation AUROC (val), the papers' habit (test), or the last; "
        "default: the model's own",
        group="budget and selection",
        choices=("val", "test", "last"),
        api=True,
    )
    # evaluation
    threshold: str | None = setting(
        None,
        "rule for the threshold saved with the model and used by metrics, scores.csv, predict and 'ganad score': "
        + "; ".join(f"{k} = {v}" for k, v in THRESHOLD_RULES.items()),
        group="budget and selection",
    )
    maps: int = setting(
        16, "heat maps drawn for the top-scored test images", group="budget and selection", bounds=(0, None)
    )
    log: str | None = setting(
        None,
        "also log each epoch to tensorboard (RUN/tensorboard/: losses, validation AUROC, an image grid) or "
        "mlflow (settings, metrics, the run folder); needs the extra of that name",
        group="budget and selection",
        choices=tuple(SINKS),
        legacy=None,
    )

    def resolved_image_size(self) -> int | None:
        return self.image_size if self.image_size is not None else DEFAULT_IMAGE_SIZE.get(self.dataset)

    def resolved_threshold(self) -> str:
        return self.threshold or DEFAULT_THRESHOLD.get(self.protocol, "val-f1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> RunConfig:
        return from_dict({**self.to_dict(), **changes})


FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}
#: settings that say where data lives, what runs it and where it is logged, not what a trial is:
#: left out of trial ids
NOT_IN_TRIAL_ID = ("data_dir", "device", "log")
#: run fields added after the first results were stored, with the value those records implicitly had
#: (``setting(legacy=...)``): a trial at that value keeps the id it had before the field existed
LEGACY_VALUES: dict[str, Any] = {
    n: f.metadata["legacy"]
    for n, f in FIELDS.items()
    if f.metadata["legacy"] is not dataclasses.MISSING and n not in NOT_IN_TRIAL_ID
}
#: the fields that change the data (``setting(variant=True)``): any value but the legacy one is a
#: variant, kept apart and labelled in tables and reports
VARIANT_FIELDS: dict[str, Any] = {n: v for n, v in LEGACY_VALUES.items() if FIELDS[n].metadata["variant"]}


def run_variant(config: dict[str, Any]) -> str:
    """``"row_scaling=none"``-style text for the variant fields a stored config sets, "" for none."""
    return ", ".join(f"{k}={config[k]}" for k, d in VARIANT_FIELDS.items() if config.get(k, d) != d)


#: every declared setting's closed set of values and inclusive numeric bounds (from :func:`setting`),
#: checked when a config is read, so a typo fails with one line before any data is loaded
CHOICES = {n: f.metadata["choices"] for n, f in FIELDS.items() if f.metadata["choices"]}
BOUNDS = {n: f.metadata["bounds"] for n, f in FIELDS.items() if f.metadata["bounds"]}
#: the settings every detector of the Python API takes (``ganad.GANomaly(epochs=3)``), with their defaults
API_FIELDS = {n: f.default for n, f in FIELDS.items() if f.metadata["api"]}
#: CLI / YAML spellings of fields whose Python name differs
ALIASES = {f.metadata["flag"]: n for n, f in FIELDS.items() if f.metadata["flag"]}


def allowed(name: str, *, short: bool = False) -> str:
    """What a setting allows, in words (``1 or 3``, ``>= 1``, ``between 1 and 4096``; ``1 .. 4096`` when
    ``short``, as ``ganad models`` lists hyper-parameters); "" when anything of its type."""
    f = FIELDS[name]
    if f.metadata["choices"]:
        return (" | " if short else ", ").join(map(str, f.metadata["choices"]))
    if f.metadata["bounds"]:
        lo, hi = f.metadata["bounds"]
        if lo is None or hi is None:
            return f">= {lo}"
        return f"{lo} .. {hi}" if short else f"between {lo} and {hi}"
    return ""


def check_setting(name: str, val: Any, source: str = "config") -> None:
    """One ConfigError naming ``name`` when ``val`` is outside its declared choices or bounds."""
    f = FIELDS[name]
    if val is None:
        return
    if f.metadata["choices"] and val not in f.metadata["choices"]:
        raise ConfigError(f"{source}: field '{name}' must be {_or_list(f.metadata['choices'])}, got {val!r}")
    if f.metadata["bounds"]:
        lo, hi = f.metadata["bounds"]
        if (lo is not None and val < lo) or (hi is not None and val > hi) or val != val:  # val != val: NaN
            raise ConfigError(f"{source}: field '{name}' must be {allowed(name)}, got {val!r}")


def _or_list(choices: tuple[Any, ...]) -> str:
    items = [str(c) for c in choices]
    return items[0] if len(items) == 1 else f"one of {', '.join(items)}" if len(items) > 2 else " or ".join(items)


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
        check_setting(name, kw[name], source)
    if kw.get("threshold") is not None:  # checked here, so a bad rule stops a run before its training
        try:
            check_threshold_rule(kw["threshold"])
        except ConfigError as e:
            raise ConfigError(f"{source}: field 'threshold': {e}") from None
    return RunConfig(**kw)


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
            return str(val)
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
