"""The results store: one JSON line per finished (or failed) trial, in ``FOLDER/results.jsonl``.

Lines are appended under a file lock, one ``write`` per line, so parallel
workers (or Ray tasks on a shared file system) never interleave records. A
line cut short by a crash is skipped with a warning when reading, never
fatal. A trial re-run later (e.g. ``--retry-failed``) appends a new line and
the newest line per trial wins.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import re
import statistics
import subprocess
import warnings
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from filelock import FileLock

from ganad.config import run_variant
from ganad.diagnostics import METRICS
from ganad.errors import ConfigError

RESULTS = "results.jsonl"
#: columns shown besides the grid's metrics
TIMING = ("train_seconds", "score_ms_per_sample")


def append(root: str | Path, record: dict[str, Any]) -> None:
    """Append one record (a JSON line) to ``root/results.jsonl`` under a file lock."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True, default=str) + "\n"
    with FileLock(str(root / (RESULTS + ".lock"))), open(root / RESULTS, "a+b") as f:
        # a process killed mid-write leaves a last line without its newline; start a fresh line so
        # this record is not glued to (and lost with) the damaged one, which reading then skips
        f.seek(0, os.SEEK_END)
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                line = "\n" + line
        f.write(line.encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def read(root: str | Path) -> list[dict[str, Any]]:
    """All records, newest per trial id, in file order."""
    path = Path(root) / RESULTS
    if not path.is_file():
        raise ConfigError(f"{path}: no results store here (run `ganad benchmark CONFIG --out {root}` first)")
    latest: dict[str, dict[str, Any]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            warnings.warn(f"{path}:{n}: skipping a damaged line (a crash while writing?)", stacklevel=2)
            continue
        latest.pop(rec.get("trial", f"line{n}"), None)
        latest[rec.get("trial", f"line{n}")] = rec
    return list(latest.values())


def environment() -> dict[str, Any]:
    """Package versions, git commit and the machine, stamped on every record.

    A number can then be traced to its code, and a time (train seconds, ms per
    sample) to the hardware and thread count it was measured with: the same
    trial is several times slower on 1 of 2 shared cores than on a GPU.
    Called in the process that ran the trial, so ``torch_threads`` is what
    that worker really used.
    """
    import numpy
    import torch

    import ganad

    return {
        "ganad": ganad.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": _git_commit(),
        "cpu": _cpu_name(),
        "cpu_count": _usable_cpus(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def _cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo`` on Linux; ``platform.processor()`` elsewhere, often less precise)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _usable_cpus() -> int | None:
    """Cores this process may run on (its affinity mask), not the host's total, which a container hides."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count()


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# -- tables ---------------------------------------------------------------------------------
def params_diff(rec: dict[str, Any]) -> dict[str, Any]:
    """The hyper-parameters of a record that differ from its model's paper defaults."""
    from ganad.models import MODELS

    defaults = MODELS[rec["model"]].defaults if rec.get("model") in MODELS else {}
    return {k: v for k, v in (rec.get("params") or {}).items() if defaults.get(k, object()) != v}


def _params_sig(rec: dict[str, Any]) -> str:
    """The data variant (e.g. unscaled rows) and the hyper-parameters that differ from the paper's, as ``k=v`` text."""
    params = [f"{k}={v}" for k, v in sorted(params_diff(rec).items())]
    return ", ".join([v for v in [run_variant(rec.get("config") or {})] if v] + params)


def summarise(records: list[dict[str, Any]], metrics: list[str] | None = None) -> list[dict[str, Any]]:
    """Mean and sample std over seeds per (grid, budget, model, variant, data set, protocol, class).

    With a single seed the std is None, not 0: one run says nothing about the
    spread, and "± 0.000" would read as a perfectly stable result.
    """
    ok = [r for r in records if r.get("status") == "ok"]
    if metrics is None:
        metrics = sorted({m for r in ok for m in (r.get("metrics") or {}) if m not in ("n", "threshold")})
        metrics += sorted({f"{DEFECT}{d}" for r in ok for d in r.get("per_defect_auroc") or {}})
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in ok:
        key = (
            r.get("grid", ""),
            r.get("budget", ""),
            r["model"],
            _params_sig(r),
            r["dataset"],
            r["protocol"],
            r["cls"],
        )
        groups[key].append(r)
    failed = defaultdict(int)
    for r in records:
        if r.get("status") != "ok":
            failed[(r.get("grid", ""), r.get("budget", ""), r.get("model"), r.get("dataset"), r.get("cls"))] += 1
    rows = []
    for key, recs in groups.items():
        grid, budget, model, variant, dataset, protocol, cls = key
        row: dict[str, Any] = {
            "grid": grid,
            "budget": budget,
            "model": model,
            "variant": variant,
            "dataset": dataset,
            "protocol": protocol,
            "class": cls,
            "seeds": len(recs),
            # every hyper-parameter (same for the whole group): lets a report match a paper's
            # "score_method=fm" even when fm is the default and so absent from ``variant``
            "params": dict(recs[0].get("params") or {}),
            "failed": failed.get((grid, budget, model, dataset, cls), 0),
        }
        for m in metrics:
            row[f"{m}_mean"], row[f"{m}_std"] = _mean_std(finite_values(recs, m))
            # each seed's own value: a mean over classes gets its spread over seeds from these
            row[f"{m}_by_seed"] = {r.get("seed"): v for r in recs if (v := _finite(_metric(r, m))) is not None}
        ratios = [((r.get("split") or {}).get("anomaly_ratio") or {}).get("test") for r in recs]
        row["anomaly_ratio"] = statistics.mean(ratios) if ratios and None not in ratios else None
        # times are only averaged within one machine: a mean over a laptop and a GPU describes neither
        by_machine: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in recs:
            by_machine[machine(r)].append(r)
        row["machines"] = sorted(by_machine)
        for m in TIMING:
            per = {k: _mean_std(finite_values(v, m)) for k, v in sorted(by_machine.items())}
            row[f"{m}_mean"], row[f"{m}_std"] = next(iter(per.values())) if len(per) == 1 else (None, None)
            row[f"{m}_by_machine"] = per
        rows.append(row)
    rows.sort(key=lambda r: (r["grid"], r["budget"], r["dataset"], r["protocol"], str(r["class"]), r["model"]))
    return rows


def _mean_std(vals: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample std; the std is None for one value (one seed: no spread to show)."""
    return (statistics.mean(vals) if vals else None), (statistics.stdev(vals) if len(vals) > 1 else None)


def machine(rec: dict[str, Any]) -> str:
    """The hardware a record's times were measured on: CPU and cores, GPU, torch threads."""
    env = rec.get("environment") or {}
    gpu = f", {env['gpu']}" if env.get("gpu") else ""
    threads = env.get("torch_threads")
    return f"{env.get('cpu') or '?'} x{env.get('cpu_count') or '?'}{gpu}" + (f", {threads} thr" if threads else "")


def finite_values(recs: list[dict[str, Any]], name: str) -> list[float]:
    """The records' values of a metric or timing field, leaving out missing and NaN ones."""
    return [v for r in recs if (v := _finite(_metric(r, name))) is not None]


def _finite(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else v


def class_mean(rows: list[dict[str, Any]], metric: str) -> tuple[float | None, float | None]:
    """A detector's mean of ``metric`` over the classes ``rows`` hold (one row per class, each its mean
    over seeds), and the sample std over seeds of each seed's own mean over classes.

    The std counts only seeds with every class (a seed half run would mix classes); it is None with
    fewer than two such seeds. With every seed complete the mean is also the mean of the seeds' means.
    """
    means = [r[f"{metric}_mean"] for r in rows]
    if not rows or any(m is None for m in means):
        return None, None
    by_seed = [r.get(f"{metric}_by_seed") or {} for r in rows]
    complete = set(by_seed[0]).intersection(*by_seed[1:])
    per_seed = [statistics.mean(b[s] for b in by_seed) for s in sorted(complete, key=str)]
    return statistics.mean(means), (statistics.stdev(per_seed) if len(per_seed) > 1 else None)


#: diagnostics read as metrics (``ganad results --metric rho:ink``), shown only when asked for
DIAGNOSTICS = METRICS


#: the prefix of a defect type's image AUROC among the metric names (``auroc:scratch``): runs on data
#: with defect types (MVTec AD layout) record ``per_defect_auroc``, which tables read as metrics
DEFECT = "auroc:"


def _metric(rec: dict[str, Any], name: str) -> float | None:
    if name in DIAGNOSTICS:
        group, key = DIAGNOSTICS[name]
        v = ((rec.get("diagnostics") or {}).get(group) or {}).get(key)
    elif name.startswith(DEFECT):
        v = (rec.get("per_defect_auroc") or {}).get(name[len(DEFECT) :])
    else:
        v = rec.get(name) if name in TIMING else (rec.get("metrics") or {}).get(name)
    return None if v is None else float(v)


def fmt_pm(mean: float | None, std: float | None, digits: int = 3) -> str:
    if mean is None:
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std is not None else f"{mean:.{digits}f}"


def format_table(rows: list[dict[str, Any]], metrics: list[str], fmt: str) -> str:
    """The summary as CSV, JSON or a Markdown table (mean ± std over seeds)."""
    if fmt == "json":
        return json.dumps(rows, indent=2, default=str)
    keys = ["grid", "budget", "model", "variant", "dataset", "protocol", "class", "seeds", "failed"]
    if fmt == "csv":
        buf = io.StringIO()
        cols = keys + [f"{m}_{s}" for m in [*metrics, *TIMING] for s in ("mean", "std")]
        w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return buf.getvalue()
    if fmt == "markdown":
        head = [*keys, *metrics, "train s", "score ms/sample"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            cells = [str(r[k]) if r[k] not in (None, "") else "" for k in keys]
            cells += [fmt_pm(r[f"{m}_mean"], r[f"{m}_std"]) for m in metrics]
            cells += [_timing_cell(r, "train_seconds", 1), _timing_cell(r, "score_ms_per_sample", 3)]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"
    raise ConfigError(f"unknown format {fmt!r}; choose csv, json or markdown")


def _timing_cell(row: dict[str, Any], name: str, digits: int) -> str:
    """Mean ± std of a time on its one machine, or one value per machine (never averaged across them)."""
    per = row.get(f"{name}_by_machine") or {}
    if len(per) <= 1:
        return fmt_pm(row.get(f"{name}_mean"), row.get(f"{name}_std"), digits)
    return "; ".join(f"{fmt_pm(m, s, digits)} ({k})" for k, (m, s) in per.items())


def chance(metric: str, rows: list[dict[str, Any]]) -> float | None:
    """What a random score gets on ``rows``' test sets (:func:`ganad.metrics.chance_over_classes`, as the
    report computes it); None for a metric without a chance level or rows without a recorded share."""
    from ganad.metrics import chance_over_classes

    if metric == "auroc" or metric.startswith(DEFECT):
        return 0.5
    if not rows or any(r.get("anomaly_ratio") is None for r in rows):
        return None
    shares: dict[Any, list[float]] = defaultdict(list)
    for r in rows:
        shares[r["class"]].append(r["anomaly_ratio"])
    return chance_over_classes(shares).get(metric)


def format_means(rows: list[dict[str, Any]], metric: str) -> str:
    """Markdown: one line per detector, one column per (data set, protocol) with ``metric``'s mean over
    classes (each class's mean over seeds), and chance. The README's headline table."""
    sections: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        sections[(r["dataset"], r["protocol"])].append(r)
    head = [f"{metric}, mean over classes ± std over seeds", *(f"{d} ({p})" for d, p in sections)]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    models = list(dict.fromkeys((r["model"], r["variant"]) for r in rows))
    for model, variant in models:
        cells = [f"{model} ({variant})" if variant else model]
        for rs in sections.values():
            mine = [r for r in rs if (r["model"], r["variant"]) == (model, variant)]
            full = len(mine) == len({r["class"] for r in rs})
            cells.append(fmt_pm(*class_mean(mine, metric)) if full else "–")
        out.append("| " + " | ".join(cells) + " |")
    chances = [chance(metric, rs) for rs in sections.values()]
    if any(c is not None for c in chances):
        out.append("| chance | " + " | ".join("–" if c is None else f"{c:.3f}" for c in chances) + " |")
    return "\n".join(out) + "\n"


def format_pivot(rows: list[dict[str, Any]], metric: str) -> str:
    """Markdown: one table per (grid, budget, data set, protocol), detectors by class, mean ± std of ``metric``.

    The layout of docs/results.md's and the papers' tables: a detector per line, a class per column and
    the mean over classes last. Times are shown per machine, never averaged across machines.
    """
    sections: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        sections[(r["grid"], r["budget"], r["dataset"], r["protocol"])].append(r)
    out = []
    for (grid, budget, dataset, protocol), rs in sections.items():
        classes = sorted({r["class"] for r in rs}, key=lambda c: (c is None, str(c).zfill(4)))
        out.append(f"### {grid} · {budget} · {dataset} · {protocol} — {metric}, mean ± std over seeds\n")
        head = ["detector", *(["all"] if classes == [None] else [str(c) for c in classes])]
        head += [] if classes == [None] else ["mean"]
        out += ["| " + " | ".join([*head, "seeds", "train s", "machines"]) + " |", "|" + "---|" * (len(head) + 3)]
        models: dict[tuple[str, str], dict[Any, dict[str, Any]]] = defaultdict(dict)
        for r in rs:
            models[(r["model"], r["variant"])][r["class"]] = r
        for (model, variant), by_class in models.items():
            cells = [f"{model} ({variant})" if variant else model]
            for c in classes:
                r = by_class.get(c)
                cells.append(fmt_pm(r[f"{metric}_mean"], r[f"{metric}_std"]) if r else "–")
            if classes != [None]:
                full = len(by_class) == len(classes)
                cells.append(fmt_pm(*class_mean(list(by_class.values()), metric)) if full else "–")
            seeds = sorted({r["seeds"] for r in by_class.values()})
            machines = sorted({m for r in by_class.values() for m in r.get("machines", [])})
            train = [r["train_seconds_mean"] for r in by_class.values() if r.get("train_seconds_mean") is not None]
            if len(machines) > 1:
                train_cell = "per machine: --layout long"
            else:
                train_cell = f"{statistics.mean(train):.1f}" if train else "–"
            cells += [
                "/".join(map(str, seeds)),
                train_cell,
                "; ".join(machines),
            ]
            out.append("| " + " | ".join(cells) + " |")
        if chance(metric, rs) is not None:  # a number is read against what a random score gets
            by_class = [chance(metric, [r for r in rs if r["class"] == c]) for c in classes]
            cells = ["chance", *(f"{c:.3f}" if c is not None else "–" for c in by_class)]
            cells += [] if classes == [None] else [f"{chance(metric, rs):.3f}"]
            out.append("| " + " | ".join([*cells, "", "", ""]) + " |")
        out.append("")
    return "\n".join(out)


def grid_snapshots(root: Path, name: str) -> list[Path]:
    """The grid files a store keeps for grid ``name``, oldest first."""
    d = root / "grids"
    keyed: list[tuple[tuple[str, int], Path]] = []
    for p in d.glob(f"{name}-*.yaml"):
        m = re.fullmatch(r"(\d{8}T\d{6})(?:-(\d+))?", p.stem[len(name) + 1 :])
        if m:  # NAME-<UTC time>.yaml, or NAME-<UTC time>-N.yaml for the Nth edit in that second
            keyed.append(((m.group(1), int(m.group(2) or 1)), p))
    first = d / f"{name}.yaml"
    return ([first] if first.is_file() else []) + [p for _, p in sorted(keyed)]
