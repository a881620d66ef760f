"""The ``ganad`` command line. Only this module parses arguments.

Every user error surfaces as one line ``ganad: error: ...`` and exit status 2;
tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from ganad.config import FIELDS, GROUPS, RunConfig, from_dict, load_yaml
from ganad.config import allowed as from_allowed
from ganad.errors import ConfigError, GanadError, RunExistsError

EPILOG = """examples:
  ganad train --dataset digits --class 0 --out runs/quick          # offline quick start
  ganad train --dataset mnist --protocol one-class-normal --class 3 --epochs 15 --out runs/m3
  ganad train --config configs/quickstart.yaml --out runs/g --set w_con=40
  ganad evaluate runs/m3
  ganad score runs/m3 new_images/ --maps maps/ --output scores.csv
  ganad datasets            # what is available locally
"""


THREADS_ENV = "GANAD_NUM_THREADS"


def _finite_float(text: str) -> float:
    """argparse type: a finite number (``--threshold nan`` would flag nothing without a word)."""
    try:
        val = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if val != val or val in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"'{text}' is not a finite number")
    return val


def _add_threads_flag(p: argparse.ArgumentParser, default: str = "the cores not already busy") -> None:
    """``--threads`` (read by :func:`_threads`); ``default``: what applies when neither it nor the variable is set."""
    p.add_argument(
        "--threads",
        type=int,
        help=f"torch CPU threads (default: ${THREADS_ENV}, else {default}); on a busy machine 1 is "
        "often several times faster than 2",
    )


def _threads(args: argparse.Namespace) -> int | None:
    """Torch CPU threads asked for by --threads or $GANAD_NUM_THREADS; None = not asked (torch's default)."""
    raw = getattr(args, "threads", None)
    source = "--threads"
    if raw is None and os.environ.get(THREADS_ENV):
        raw, source = os.environ[THREADS_ENV], f"${THREADS_ENV}"
    if raw is None:
        return None
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"{source} must be a positive whole number of threads, got {raw!r}")
    return n


def _command_threads(args: argparse.Namespace) -> int:
    """Torch's CPU threads for a command: --threads or $GANAD_NUM_THREADS, else the cores not already busy.

    With another process on the cores, extra threads wait for the busy core:
    benchmarks/throughput.py measured 2 threads 4-100x slower than 1 here. The count used is
    recorded with the run (``threads`` in metrics.json) and printed in its summary.
    """
    from ganad.resources import free_cores

    return _threads(args) or free_cores()


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    """One flag per declared run setting (:func:`ganad.config.setting`), in its group, with its help,
    default and choices; ``--config`` and ``--set`` are the two flags that are not settings."""
    groups = {name: p.add_argument_group(name) for name in GROUPS}
    groups["what to train"].add_argument(
        "--config", type=Path, help="YAML file of run fields; flags given here override it"
    )
    for name, f in FIELDS.items():
        meta = f.metadata
        if name == "params":
            groups[meta["group"]].add_argument(
                "--set",
                action="append",
                default=[],
                metavar="KEY=VALUE",
                help="model hyper-parameter, e.g. --set w_con=50 (repeatable; `ganad models NAME` lists them)",
            )
        if not meta["cli"]:
            continue
        typ = str(f.type)
        kind = int if typ.startswith("int") else float if typ.startswith("float") else str
        default = f.default if f.default is not dataclasses.MISSING else None
        shown = f" (default {default})" if default is not None and "default" not in meta["help"] else ""
        groups[meta["group"]].add_argument(
            "--" + (meta["flag"] or name).replace("_", "-"),
            dest=name,
            type=kind,
            choices=meta["choices"],
            help=meta["help"] + shown,
        )


def build_config(args: argparse.Namespace) -> RunConfig:
    """YAML (if any) first, then every flag that was given."""
    base = load_yaml(args.config).to_dict() if args.config else {}
    for name in FIELDS:
        val = getattr(args, name, None)
        if val is not None and name != "params":
            base[name] = val
    params = dict(base.get("params") or {})
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        params[key.strip()] = yaml.safe_load(raw)
    base["params"] = params
    return from_dict(base, source=str(args.config) if args.config else "flags")


def cmd_train(args: argparse.Namespace) -> int:
    from ganad import run

    cfg = build_config(args)
    if cfg.dataset == "digits" and cfg.protocol == "one-class-normal":
        raise ConfigError("digits has no official test split; use --protocol one-class-anomalous")
    out = args.out or Path("runs") / f"{cfg.model}-{cfg.dataset}-{cfg.protocol}-c{cfg.cls}-s{cfg.seed}"
    rec = run.train(cfg, out, overwrite=args.overwrite, resume=args.resume, progress=not args.quiet)
    _print_record(rec, Path(out))
    return 0


def _print_record(rec: dict[str, Any], out: Path | None) -> None:
    from ganad import diagnostics

    m = rec["metrics"]
    sel = rec["selection"]
    cls = "" if rec["cls"] is None else f"class {rec['cls']}, "
    print(f"{rec['model']} on {rec['dataset']} ({rec['protocol']}, {cls}seed {rec['seed']})")
    print(f"  AUROC {m['auroc']:.4f}   AUPRC {m['auprc']:.4f}   best F1 {m['best_f1']:.4f}")
    if "pixel_auroc" in m:
        print(
            f"  pixel AUROC {m['pixel_auroc']:.4f}"
            + (f"   AUPRO (FPR <= 0.3) {m['aupro']:.4f}" if "aupro" in m else "")
        )
    if rec.get("per_defect_auroc"):
        print("  AUROC per defect: " + ", ".join(f"{k} {v:.4f}" for k, v in rec["per_defect_auroc"].items()))
    if "f1" in m:
        print(
            f"  at threshold {m['threshold']:.4g} ({rec['threshold_description']}): "
            f"precision {m['precision']:.4f}  recall {m['recall']:.4f}  F1 {m['f1']:.4f}"
        )
    if rec.get("train_seconds") is not None:
        print(
            f"  trained {rec['epochs_run']} epoch(s) / {rec['steps']} steps in {rec['train_seconds']:.1f}s"
            + (f" on {rec['threads']} thread(s); " if rec.get("threads") else "; ")
            + f"selected epoch {sel['selected_epoch']} on {sel['select_on']}; "
            f"scoring {rec['score_ms_per_sample']:.3f} ms/sample on {rec['device']}"
        )
    sizes = (rec.get("split") or {}).get("sizes")
    if sizes:
        before = (rec.get("split") or {}).get("sizes_before_subsampling") or {}
        part = {k: f"{v:,}" + (f" (of {before[k]:,})" if before.get(k, v) != v else "") for k, v in sizes.items()}
        print(f"  data: {part['train']} training, {part['val']} validation, {part['test']} test samples")
    if sel.get("note"):
        print(f"  NOTE: {sel['note']}")
    print(f"  diagnostics: {diagnostics.summary(rec.get('diagnostics'))}")
    for w in rec.get("warnings") or []:
        print(f"  WARNING: {w}")
    if out is not None:
        print(f"  run folder: {out}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ganad import run

    rec = run.evaluate_run(args.run, data_dir=args.data_dir, progress=not args.quiet)
    if args.json:
        print(json.dumps(rec, indent=2))
    else:
        _print_record(rec, None)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from ganad import scoring

    text = scoring.score_paths(
        args.run,
        args.inputs,
        maps_dir=args.maps,
        maps_format=args.maps_format,
        output=args.output,
        overwrite=args.overwrite,
        progress=not args.quiet,
        threshold=args.threshold,
        announce=lambda line: print(line, file=sys.stderr),
    )
    if args.output is None:
        sys.stdout.write(text)
    else:
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from ganad.data import dataset_status, download_dataset

    if args.action == "download":
        if not args.name:
            raise ConfigError("ganad datasets download NAME: name a data set")
        for path in download_dataset(args.name):
            print(path)
        return 0
    rows = dataset_status(data_dir=args.data_dir)
    for r in rows:
        print(json.dumps(r) if args.json else _status_line(r))
    return 0


def _status_line(r: dict[str, Any]) -> str:
    state = r.get("status") or ("present" if r.get("present") else "missing")
    return f"{r.get('name', '?'):<15} {state:<10} {r.get('where') or r.get('location') or ''}"


def cmd_benchmark(args: argparse.Namespace) -> int:
    import os

    from ganad.bench import load_grid, run_grid
    from ganad.bench.runner import plan, plan_summary

    if args.data_dir:  # workers and Ray tasks read it from the environment
        os.environ["GANAD_DATA_DIR"] = str(args.data_dir)
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    spec = load_grid(args.config)
    out = args.out or Path("results") / f"{spec.name}-{args.budget}"
    only = _only(args.only)
    if args.dry_run:
        rows = plan(spec, args.budget, out, only)
        for row in rows:
            print(json.dumps(row))
        print(plan_summary(rows, args.workers), file=sys.stderr)
        return 0
    counts = run_grid(
        spec,
        args.budget,
        out,
        workers=args.workers,
        backend=args.backend,
        retry_failed=args.retry_failed,
        progress=not args.quiet,
        limit=args.limit,
        threads=_threads(args),
        only=only,
        keep_checkpoints=args.keep_checkpoints,
        stack_seeds=not args.no_stack_seeds,
    )
    print(json.dumps({"results": str(out / "results.jsonl"), **counts}))
    print(
        f"{counts['total']} trials: {counts['ran']} ran now, {counts['done']} were already done (skipped), "
        f"{counts['failed']} failed"
        + (" (--retry-failed runs them again)" if counts["failed"] else "")
        + (f", {counts['busy']} busy in another process" if counts["busy"] else ""),
        file=sys.stderr,
    )
    print(f"next: ganad results {out}   and   ganad report {out}", file=sys.stderr)
    return 1 if counts["failed"] and not counts["ran"] and not counts["done"] else 0


def _only(items: list[str]) -> dict[str, list[str]]:
    """``--only FIELD=V1,V2`` flags (repeatable) as ``{FIELD: [V1, V2]}``."""
    only: dict[str, list[str]] = {}
    for item in items:
        key, sep, vals = item.partition("=")
        if not sep or not vals:
            raise ConfigError(f"--only expects FIELD=V1,V2, got {item!r}")
        only[key.strip()] = [v.strip() for v in vals.split(",")]
    return only


def cmd_results(args: argparse.Namespace) -> int:
    text = results_text(args)
    if args.output:
        from ganad.atomic import atomic_write_bytes

        if args.output.is_dir():
            raise RunExistsError(f"{args.output} is a folder; --output names the file to write")
        if args.output.exists() and not args.overwrite:
            raise RunExistsError(f"{args.output} exists; pass --overwrite to replace it")
        atomic_write_bytes(args.output, text.encode())
    else:
        sys.stdout.write(text)
    return 0


def results_text(args: argparse.Namespace) -> str:
    """What ``ganad results`` prints for its parsed arguments (docs pages embed and check it)."""
    from ganad.bench import store
    from ganad.bench.grid import matches_only

    only = _only(args.only)
    records = [r for r in store.read(args.folder) if matches_only(r.get("config") or {}, only)]
    if not records:
        raise ConfigError(f"{args.folder}: no results" + (" match --only" if only else ""))
    chosen = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    if args.metric in store.DIAGNOSTICS and args.metric not in (chosen or []):  # shown only when asked for
        chosen = [*(chosen or []), args.metric]
    rows = store.summarise(records, chosen)
    metrics = chosen or sorted({k[: -len("_mean")] for r in rows for k in r if k.endswith("_mean")} - set(store.TIMING))
    if args.metric and args.metric not in metrics:
        raise ConfigError(
            f"--metric {args.metric}: not recorded in {args.folder}; recorded: {', '.join(metrics)}; "
            f"diagnostics: {', '.join(store.DIAGNOSTICS)}"
        )
    pivot_metric = args.metric or (chosen[0] if chosen else "auroc" if "auroc" in metrics else metrics[0])
    if args.layout == "long" or args.format != "markdown":
        return store.format_table(rows, metrics, args.format)
    if args.layout == "means":  # one line per detector, the mean over classes per data set
        return store.format_means(rows, pivot_metric)
    return store.format_pivot(rows, pivot_metric)  # detectors by class, one table per data set


def cmd_report(args: argparse.Namespace) -> int:
    import os

    from ganad.bench.report import write_report

    if args.data_dir:
        os.environ["GANAD_DATA_DIR"] = str(args.data_dir)
    page = write_report(args.folder, args.out, overwrite=args.overwrite, images=not args.no_images)
    print(page)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ganad.detector import load
    from ganad.export import FORMATS

    det = load(args.run, device="cpu")
    out = args.output or (args.run if args.run.is_dir() else args.run.parent) / f"model{FORMATS[args.format]}"
    if type(det.model_).not_exportable and det.model_.export_parts():
        for part, path in det.export_parts(out, args.format, overwrite=args.overwrite).items():
            print(f"{path}: {det.model_name}'s {part} as {args.format}")
        print(f"note: {det.model_name}'s score is a latent search, not one graph: score with ganad, or run the search")
        print("      with these nets (its settings are in each file's metadata); see the README, Deploying")
        return 0
    path = det.export(out, args.format, overwrite=args.overwrite)
    print(f"{path}: {det.model_name} as {args.format}; threshold {det.threshold_:.6g} ({det.threshold_description_})")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from ganad.models import MODELS, get_model_class

    names = [get_model_class(args.name).name] if args.name else list(MODELS)
    for name in names:
        cls = MODELS[name]
        print(f"{name:<18} {cls.api_name:<18} {cls.paper}")
        if args.verbose or args.name:
            rows = cls.describe_hparams()
            width = max(len(f"{r['name']} = {r['default']!r}") for r in rows)
            for r in rows:
                head = f"{r['name']} = {r['default']!r}"
                print(f"    {head:<{width}}  [{r['allowed']}]  {r['meaning']}")
    if args.verbose or args.name:
        _print_common_settings()
    return 0


def _print_common_settings() -> None:
    """The settings every detector shares (``ganad train`` flags, API parameters), from their declarations."""
    from ganad.detector import DETECTOR_SETTINGS

    print("settings every detector shares (ganad train --FLAG, or a parameter of the Python class):")
    rows = [
        (n, f.default, from_allowed(n, short=True), f.metadata["help"]) for n, f in FIELDS.items() if f.metadata["api"]
    ]
    rows += [(n, d, "", meaning.split(";")[0]) for n, (d, meaning) in DETECTOR_SETTINGS.items()]
    width = max(len(f"{n} = {d!r}") for n, d, _, _ in rows)
    for n, d, allowed, meaning in rows:
        head = f"{n} = {d!r}"
        print(f"    {head:<{width}}  " + (f"[{allowed}]  " if allowed else "") + meaning)


def make_parser() -> argparse.ArgumentParser:
    from ganad.export import FORMATS
    from ganad.scoring import MAP_FORMATS
    from ganad.version import __version__

    p = argparse.ArgumentParser(
        prog="ganad",
        description="Anomaly detection with GANs: AnoGAN, EGBAD/BiGAN, GANomaly and dual "
        "adversarial autoencoders. Train on normal data, score new data, save models safely.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"ganad {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = sub.add_parser(
        "train",
        help="train a detector and evaluate it; writes a run folder",
        description="Train a detector on the normal part of a protocol split, select the "
        "epoch on validation data, evaluate on test and write a run folder (config.yaml, "
        "model.safetensors/.json, log.jsonl, metrics.json, scores.csv, heatmaps.png).",
    )
    _add_train_flags(t)
    o = t.add_argument_group("output")
    o.add_argument("--out", type=Path, help="run folder (default runs/MODEL-DATASET-PROTOCOL-cCLASS-sSEED)")
    o.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    o.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    o.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    _add_threads_flag(o)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser(
        "evaluate",
        help="re-score a run's test split from its saved model",
        description="Load RUN/model.safetensors and re-compute the test metrics on the same "
        "split (a pure function of data set, protocol, class and seed).",
    )
    e.add_argument("run", type=Path, help="a run folder written by `ganad train`")
    e.add_argument("--data-dir", help="offline data folder (default: as when trained)")
    e.add_argument("--json", action="store_true", help="print the full record as JSON")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    _add_threads_flag(e)
    e.set_defaults(func=cmd_evaluate)

    s = sub.add_parser(
        "score",
        help="score new images, folders or CSV files with a trained run",
        description="Write a CSV of anomaly scores (higher = more anomalous) and the "
        "prediction at the run's threshold for each input.",
    )
    s.add_argument("run", type=Path, help="a run folder or saved detector")
    s.add_argument("inputs", nargs="+", type=Path, help="image files, folders of images, CSV files or .npy arrays")
    s.add_argument("--output", type=Path, help="write the CSV here instead of standard output")
    s.add_argument(
        "--maps",
        type=Path,
        help="folder for one heat map per input image, named after its path inside the input folder "
        "(sub/x.png -> sub__x_map.png)",
    )
    s.add_argument(
        "--maps-format",
        choices=MAP_FORMATS,
        default="png",
        help="png: the input beside its map overlaid, with a colour scale (default); npy: the raw float map; "
        "both at the input image's own resolution",
    )
    s.add_argument(
        "--threshold",
        type=_finite_float,
        help="flag scores at or above this value instead of the run's saved threshold (printed on standard error)",
    )
    s.add_argument("--overwrite", action="store_true", help="replace existing output files")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    _add_threads_flag(s)
    s.set_defaults(func=cmd_score)

    d = sub.add_parser(
        "datasets",
        help="list data sets and where their files are; download them",
        description="Without an action: list each data set and whether its files are present "
        "(offline folder or cache). `download NAME` fetches and verifies them.",
    )
    d.add_argument("action", nargs="?", choices=("list", "download"), default="list")
    d.add_argument("name", nargs="?", help="data set to download")
    d.add_argument("--data-dir", help="offline folder to look in (default $GANAD_DATA_DIR)")
    d.add_argument("--json", action="store_true", help="one JSON object per data set")
    d.set_defaults(func=cmd_datasets)

    b = sub.add_parser(
        "benchmark",
        help="run a grid of trials from a YAML file (resumable, parallel, optional Ray)",
        description="Expand CONFIG (models x data sets x protocols x classes x seeds x hyper-parameters) "
        "at one budget into ordinary run folders under OUT/trials/, skipping finished trials and "
        "resuming interrupted ones; every result is one JSON line in OUT/results.jsonl. "
        "Shipped grids are in configs/ (quick: minutes on 2 CPU cores; cpu: an hour or two; full: "
        "the paper's budget, for a GPU).",
    )
    b.add_argument("config", type=Path, help="grid YAML file, e.g. configs/egbad_kdd99.yaml")
    b.add_argument(
        "--budget", default="quick", help="budget named in the grid file: quick, cpu or full (default quick)"
    )
    b.add_argument("--out", type=Path, help="results folder (default results/GRIDNAME-BUDGET)")
    b.add_argument("--workers", type=int, default=1, help="trials run in parallel (local backend; default 1)")
    _add_threads_flag(b, "cores / workers per trial, and one per core for one worker; local backend")
    b.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="local processes, or a Ray cluster at $RAY_ADDRESS (pip install 'ganad[ray]')",
    )
    b.add_argument("--data-dir", help="offline data folder (default $GANAD_DATA_DIR, then the download cache)")
    b.add_argument("--retry-failed", action="store_true", help="run trials that failed before again")
    b.add_argument("--limit", type=int, help="run at most this many unfinished trials, then stop")
    b.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="FIELD=V1,V2",
        help="run the part of the grid whose FIELD is one of the values, e.g. --only dataset=mnist (repeatable)",
    )
    b.add_argument(
        "--dry-run",
        action="store_true",
        help="list the trials, their state, the settings that vary and an estimated time from the store's "
        "finished trials; run nothing",
    )
    b.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep each finished trial's resume checkpoint (by default it is deleted once the result is "
        "stored: the model, scores and log stay)",
    )
    b.add_argument(
        "--no-stack-seeds",
        action="store_true",
        help="train every trial alone (by default a cell's new seeds of a GAN detector on rows "
        "train as one stacked model in one worker: same results within seed noise, 1.2-1.5x the trials per hour)",
    )
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=cmd_benchmark)

    r = sub.add_parser(
        "results",
        help="summarise a results folder: mean ± std over seeds",
        description="Read FOLDER/results.jsonl and print one row per model, variant, data set, protocol "
        "and class with the mean and sample std of every metric over seeds.",
    )
    r.add_argument("folder", type=Path, help="results folder written by `ganad benchmark`")
    r.add_argument("--format", choices=("markdown", "csv", "json"), default="markdown")
    r.add_argument(
        "--layout",
        choices=("pivot", "means", "long"),
        default="pivot",
        help="markdown: detectors by class per data set (pivot, default), detectors by data set with the "
        "mean over classes (means), or one line per cell with every metric and its times per machine (long); "
        "csv and json are always long",
    )
    r.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="FIELD=V1,V2",
        help="only these results, e.g. --only dataset=mnist --only model=pca,knn (repeatable)",
    )
    r.add_argument(
        "--metric",
        help="the pivot's metric (default: the first of --metrics, else auroc); also a diagnostic: rho:ink, "
        "rho:l1, rho:l1_median (the score's Spearman rho with a trivial statistic), spread, coverage",
    )
    r.add_argument("--metrics", help="comma-separated metrics to show (default: all recorded)")
    r.add_argument("--output", type=Path, help="write here instead of standard output")
    r.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    r.set_defaults(func=cmd_results)

    rp = sub.add_parser(
        "report",
        help="write an HTML + Markdown report (tables, published numbers, plots) for a results folder",
        description="Write FOLDER/report/report.html (self-contained) and report.md with figures/.",
    )
    rp.add_argument("folder", type=Path, help="results folder written by `ganad benchmark`")
    rp.add_argument("--out", type=Path, help="report folder (default FOLDER/report)")
    rp.add_argument("--overwrite", action="store_true", help="replace a folder not written by `ganad report`")
    rp.add_argument("--no-images", action="store_true", help="skip the image grid (it reloads models and data)")
    rp.add_argument("--data-dir", help="offline data folder for the image grid (default $GANAD_DATA_DIR)")
    rp.set_defaults(func=cmd_report)

    x = sub.add_parser(
        "export",
        help="write a trained run as one ONNX or TorchScript file with its preprocessing inside",
        description="Write RUN's detector as one file a non-Python deployment can run: it takes raw input "
        "(uint8 images (N, C, H, W) at the model's size, or raw rows) and returns the score (and the map "
        "for images); the threshold and its rule are in the file's metadata. AnoGAN (a latent search) "
        "and the k-NN and Isolation Forest baselines cannot be exported.",
    )
    x.add_argument("run", type=Path, help="a run folder or saved detector")
    x.add_argument("--format", choices=tuple(FORMATS), default="onnx", help="default onnx")
    x.add_argument("--output", type=Path, help="the file to write (default RUN/model.onnx or RUN/model.pt)")
    x.add_argument("--overwrite", action="store_true", help="replace an existing file")
    x.set_defaults(func=cmd_export)

    m = sub.add_parser(
        "models",
        help="list the detectors; with a NAME (or -v), each hyper-parameter's default, allowed values and meaning",
        description="List the detectors. 'ganad models egbad' shows EGBAD's hyper-parameters: default, allowed "
        "values and what each does; set them with --set NAME=VALUE or a config's params.",
    )
    m.add_argument("name", nargs="?", help="one detector, e.g. egbad")
    m.add_argument("-v", "--verbose", action="store_true", help="show every detector's hyper-parameters")
    m.set_defaults(func=cmd_models)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        if args.func in (cmd_train, cmd_evaluate, cmd_score):
            from ganad.resources import torch_threads

            with torch_threads(_command_threads(args)):  # the caller's count comes back (main() in Python)
                return int(args.func(args) or 0)
        return int(args.func(args) or 0)
    except GanadError as e:
        print(f"ganad: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the file system refused (permission, disk full, a file where a folder must be)
        print(f"ganad: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ganad: interrupted (a training run can continue with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
