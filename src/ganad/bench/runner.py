"""Run a grid's trials: resumable, safe for several processes, local or on Ray.

Every trial is an ordinary run folder (``FOLDER/trials/<id>/``) made by
:func:`ganad.run.train`, identical to ``ganad train``. The rules that make a
grid safe to interrupt and re-run:

* a trial whose ``metrics.json`` exists is finished: it is skipped (and
  recorded in the store if a crash happened between the two writes);
* so is a trial with an ``ok`` line in ``results.jsonl`` whose folder is gone:
  a results store committed without its ``trials/`` (weights are large) can
  be continued on another machine without re-running what it holds;
* a folder with a ``config.yaml`` but no metrics is an interrupted trial: it
  resumes from its last epoch checkpoint;
* a trial that failed (``failed.json``, e.g. a NaN loss) is recorded as failed
  and skipped until ``--retry-failed``;
* a trial is claimed with a file lock (``FOLDER/locks/<id>.lock``) before it
  runs; a second process on the same folder skips trials another holds, and
  the lock goes away with the process if it dies.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock, Timeout

from ganad import run
from ganad.bench import store
from ganad.bench.grid import GridSpec, Trial, expand, matches_only
from ganad.data.sources import TABULAR_SOURCES
from ganad.errors import ConfigError, GanadError
from ganad.resources import torch_threads


def trial_state(trial: Trial, root: Path, recorded: set[str] | None = None) -> str:
    """'done', 'failed', 'partial' (resumable) or 'new'; ``recorded``: ids with an ok line in the store."""
    folder = trial.folder(root)
    if (folder / run.METRICS).is_file():
        return "done"
    if recorded is not None and trial.id in recorded and not folder.is_dir():
        return "done"
    if (folder / run.FAILED).is_file():
        return "failed"
    if (folder / run.CONFIG).is_file():
        return "partial"
    return "new"


def make_record(trial: Trial, root: Path, status: str, **extra: Any) -> dict[str, Any]:
    cfg = trial.config
    rec: dict[str, Any] = {
        "trial": trial.id,
        "grid": trial.grid,
        "budget": trial.budget,
        "status": status,
        "folder": str(Path("trials") / trial.id),
        "model": cfg.model,
        "dataset": cfg.dataset,
        "protocol": cfg.protocol,
        "cls": cfg.cls,
        "seed": cfg.seed,
        "config": {k: v for k, v in cfg.to_dict().items() if k != "data_dir"},
        "finished_at": store.now(),
        "environment": store.environment(),
    }
    rec.update(extra)
    return rec


def record_from_folder(trial: Trial, root: Path) -> dict[str, Any]:
    m = run.read_metrics(trial.folder(root))
    keep = ("params", "metrics", "threshold_rule", "threshold_description", "selection", "train_seconds")
    keep += ("epochs_run", "steps", "score_ms_per_sample", "device", "split", "diagnostics", "warnings")
    keep += ("per_defect_auroc",)  # runs with defect types (MVTec AD layout)
    return make_record(trial, root, "ok", **{k: m.get(k) for k in keep})


def run_trial(trial: Trial, root: str | Path, *, retry_failed: bool = False, threads: int | None = None) -> dict:
    """Run (or resume) one trial under its lock and append its record; returns {'state': ...}.

    Safe to call from any process that sees ``root``: this is what workers and Ray tasks execute.
    """
    root = Path(root)
    if threads:
        import torch

        torch.set_num_threads(threads)
    (root / "locks").mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(root / "locks" / f"{trial.id}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return {"trial": trial.id, "state": "busy"}
    try:
        state = trial_state(trial, root)
        if state == "done":
            return {"trial": trial.id, "state": "done"}
        if state == "failed" and not retry_failed:
            return {"trial": trial.id, "state": "failed"}
        folder = trial.folder(root)
        t0 = time.perf_counter()
        try:
            run.train(trial.config, folder, resume=state in ("partial", "failed"), progress=False)
        except GanadError as e:  # a NaN loss, a data error: record it, keep the grid going
            from ganad.atomic import atomic_write_json

            if folder.is_dir():
                atomic_write_json(folder / run.FAILED, {"status": "failed", "error": str(e)})
            store.append(root, make_record(trial, root, "failed", error=str(e), seconds=time.perf_counter() - t0))
            return {"trial": trial.id, "state": "failed", "error": str(e)}
        rec = record_from_folder(trial, root)
        rec["wall_seconds"] = round(time.perf_counter() - t0, 2)  # what --dry-run estimates from
        store.append(root, rec)
        return {
            "trial": trial.id,
            "state": "ran",
            "metrics": rec.get("metrics") or {},
            "seconds": time.perf_counter() - t0,
        }
    finally:
        lock.release()


def run_cell(trials: list[Trial], root: str | Path, *, retry_failed: bool = False) -> list[dict]:
    """Run a grid cell's seeds (trials that differ only in their seed, none started) as one stacked
    model (:func:`ganad.run.train_seeds`), each trial recorded as if it ran alone; returns one result
    per trial. Any trial busy in another process, or a failure of the stack, and each trial runs alone."""
    root = Path(root)
    if len(trials) == 1:
        return [run_trial(trials[0], root, retry_failed=retry_failed)]
    (root / "locks").mkdir(parents=True, exist_ok=True)
    locks = [FileLock(str(root / "locks" / f"{t.id}.lock")) for t in trials]
    held = []
    try:
        for lock in locks:
            lock.acquire(timeout=0)
            held.append(lock)
    except Timeout:
        for lock in held:
            lock.release()
        return [run_trial(t, root, retry_failed=retry_failed) for t in trials]
    t0 = time.perf_counter()
    try:
        if any(trial_state(t, root) != "new" for t in trials):
            raise _Solo
        run.train_seeds([t.config for t in trials], [t.folder(root) for t in trials], progress=False)
    except (_Solo, GanadError):
        for lock in held:
            lock.release()
        held = []
        return [run_trial(t, root, retry_failed=retry_failed) for t in trials]
    finally:
        for lock in held:
            lock.release()
    share = (time.perf_counter() - t0) / len(trials)
    results = []
    for t in trials:
        rec = record_from_folder(t, root)
        rec["wall_seconds"] = round(share, 2)  # its share of the stack's wall time (--dry-run estimates from it)
        rec["stacked_seeds"] = len(trials)
        store.append(root, rec)
        results.append({"trial": t.id, "state": "ran", "metrics": rec.get("metrics") or {}, "seconds": share})
    return results


class _Solo(Exception):
    """A cell that must run trial by trial after all (a trial was started elsewhere meanwhile)."""


def cells(todo: list[Trial], states: dict[str, str], stack_seeds: bool = True) -> list[list[Trial]]:
    """``todo`` grouped into what one worker runs at once: the new trials of a cell whose model can be
    stacked on its data (:func:`ganad.stacking.why_not_stack`) together, every other trial alone."""
    from ganad.models import get_model_class
    from ganad.stacking import why_not_stack

    groups: dict[str, list[Trial]] = {}
    for t in todo:
        cfg = t.config
        kind = "tabular" if cfg.dataset in TABULAR_SOURCES else "image"
        if (
            stack_seeds
            and states.get(t.id) == "new"
            and not cfg.log
            and not why_not_stack(get_model_class(cfg.model), kind)
        ):
            key = json.dumps({k: v for k, v in cfg.to_dict().items() if k != "seed"}, sort_keys=True, default=str)
            groups.setdefault(key, []).append(t)
        else:
            groups[t.id] = [t]
    return list(groups.values())


def _worker_init(threads: int, env: dict[str, str]) -> None:
    os.environ.update(env)
    import torch

    torch.set_num_threads(threads)


def _run_in_worker(trial: Trial, root: str, retry_failed: bool) -> dict:
    try:
        return run_trial(trial, root, retry_failed=retry_failed)
    except Exception as e:  # a bug, not a user error: keep the traceback in the store for the report
        rec = make_record(
            trial, Path(root), "failed", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc()
        )
        store.append(root, rec)
        return {"trial": trial.id, "state": "failed", "error": str(e)}


def _run_cell_in_worker(cell: list[Trial], root: str, retry_failed: bool) -> list[dict]:
    if len(cell) == 1:
        return [_run_in_worker(cell[0], root, retry_failed)]
    try:
        return run_cell(cell, root, retry_failed=retry_failed)
    except Exception:  # a bug in the stacked path: each trial alone, each failure recorded alone
        return [_run_in_worker(t, root, retry_failed) for t in cell]


def run_grid(
    spec: GridSpec,
    budget: str,
    root: str | Path,
    *,
    workers: int = 1,
    backend: str = "local",
    retry_failed: bool = False,
    progress: bool = True,
    limit: int | None = None,
    only: dict[str, list[str]] | None = None,
    threads: int | None = None,
    keep_checkpoints: bool = False,
    stack_seeds: bool = True,
) -> dict[str, Any]:
    """Run every unfinished trial of ``spec`` at ``budget`` into ``root``; returns counts by outcome.

    With ``stack_seeds`` a cell's new trials that differ only in their seed are trained as one stacked
    model by one worker when the model allows it on the data (the four GAN detectors on rows:
    :mod:`ganad.stacking`); each is still its own trial folder and results line.

    ``threads`` is each local trial's torch CPU threads (None: cores / workers, or torch's default
    for one worker). It is recorded with each result, since it changes the measured seconds.
    Unless ``keep_checkpoints``, a finished trial's resume state (:data:`RESUME_STATE`) is deleted
    once its result is stored: a finished trial is never resumed, and that state was most of a
    trial folder (258 MB of an EGBAD image trial's 275 MB; a 3-seed image grid filled a 250 GB disk).
    """
    root = Path(root)
    trials = select(expand(spec, budget), only)
    root.mkdir(parents=True, exist_ok=True)
    _save_grid(spec, budget, root)
    recorded = _recorded_ids(root)
    todo: list[Trial] = []
    counts = {"total": len(trials), "done": 0, "failed": 0, "ran": 0, "busy": 0}
    states: dict[str, str] = {}
    for t in trials:
        state = states[t.id] = trial_state(t, root, recorded)
        if state == "done":
            counts["done"] += 1
            if t.id not in recorded:  # finished, but the store line was lost to a crash
                _record_lost_line(t, root)
        elif state == "failed" and not retry_failed:
            counts["failed"] += 1
        else:
            todo.append(t)
    if limit is not None:
        todo = todo[:limit]
    if not todo:
        return counts
    groups = cells(todo, states, stack_seeds)
    if backend == "ray":
        results = _run_ray(groups, root, retry_failed, progress, spec.metrics[0], keep_checkpoints)
    elif backend == "local":
        results = _run_local(groups, root, workers, retry_failed, progress, threads, spec.metrics[0], keep_checkpoints)
    else:
        raise ConfigError(f"unknown backend {backend!r}; choose local or ray")
    for r in results:
        counts[r["state"] if r["state"] in counts else "ran"] += 1
    return counts


def select(trials: list[Trial], only: dict[str, list[str]] | None) -> list[Trial]:
    """Trials whose fields match ``only`` (``{"dataset": ["mnist"], "class": ["0", "1"]}``), compared as text."""
    return [t for t in trials if matches_only(t.config.to_dict(), only)]


def _record_lost_line(trial: Trial, root: Path) -> None:
    """Append the missing store line of a finished trial, under its lock so two processes never both do."""
    (root / "locks").mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(root / "locks" / f"{trial.id}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:  # another process holds it and records it
        return
    try:
        if trial.id not in _recorded_ids(root):  # re-read: another process may have written it meanwhile
            store.append(root, record_from_folder(trial, root))
    finally:
        lock.release()


def _recorded_ids(root: Path) -> set[str]:
    try:
        return {r["trial"] for r in store.read(root) if r.get("status") == "ok"}
    except ConfigError:
        return set()


def _save_grid(spec: GridSpec, budget: str, root: Path) -> None:
    """Keep the grid file beside its results: ``NAME.yaml``, then ``NAME-<UTC time>.yaml`` for each edit.

    A snapshot is never overwritten. A new one is kept only when the grid *means*
    something else than the newest snapshot (its parsed YAML differs): a grid
    resumed ten times after one edit adds one file, and an edit of comments or
    layout adds none. Comparing with the newest, not with any, keeps the newest
    the grid as last run, which is what the report reads.
    """
    d = root / "grids"
    d.mkdir(exist_ok=True)
    text = spec.path.read_text()
    kept = store.grid_snapshots(root, spec.name)
    if kept and _same_grid(kept[-1].read_text(), text):
        return
    target = d / f"{spec.name}.yaml"
    stamp, n = time.strftime("%Y%m%dT%H%M%S", time.gmtime()), 1
    while target.is_file():  # two edits in one second get -2, -3, ...: never overwrite a snapshot
        target = d / f"{spec.name}-{stamp}{'' if n == 1 else f'-{n}'}.yaml"
        n += 1
    target.write_text(text)


def _same_grid(old: str, new: str) -> bool:
    """Whether two grid texts parse to the same YAML (comments, key order and layout aside)."""
    if old == new:
        return True
    try:
        return yaml.safe_load(old) == yaml.safe_load(new)
    except yaml.YAMLError:  # a snapshot edited by hand into bad YAML: keep the new text
        return False


def _trial_epochs_done(trial: Trial, root: Path) -> int:
    log = trial.folder(root) / "log.jsonl"
    try:
        return sum(1 for _ in log.open())
    except OSError:
        return 0


#: what a finished trial folder no longer needs: the resume state (the run's model, scores and log stay)
RESUME_STATE = ("checkpoint.safetensors", "checkpoint.json", "best.safetensors")


class _Ticker:
    """What happens as each trial finishes: one plain line with the grid's metric and an ETA
    (``ganad benchmark``'s log), and, given ``drop_resume_in``, deleting its resume state.

    Printed with or without the bars (``-q`` hides bars, not these), so a log file or a terminal
    shows what finished, how it scored and how long the rest will take.
    """

    def __init__(self, total: int, metric: str, drop_resume_in: Path | None = None) -> None:
        self.total, self.metric, self.done, self.t0 = total, metric, 0, time.perf_counter()
        self.root = drop_resume_in

    def __call__(self, t: Trial, res: dict) -> str:
        self.done += 1
        folder = t.folder(self.root) if self.root is not None else None
        if folder is not None and res.get("state") == "ran" and (folder / run.METRICS).is_file():
            for name in RESUME_STATE:
                (folder / name).unlink(missing_ok=True)
        elapsed = time.perf_counter() - self.t0
        left = (self.total - self.done) * elapsed / self.done
        value = (res.get("metrics") or {}).get(self.metric)
        what = f"{self.metric} {value:.4f}" if isinstance(value, int | float) else res.get("error", "")[:120]
        took = f", {res['seconds']:.0f} s" if "seconds" in res else ""
        eta = f"; about {_duration(left)} left" if self.done < self.total else f"; grid done in {_duration(elapsed)}"
        line = f"[{self.done}/{self.total}] {t.id}: {res['state']}{', ' + what if what else ''}{took}{eta}"
        print(line, file=sys.stderr, flush=True)
        return line


def _duration(seconds: float) -> str:
    m = round(seconds / 60)
    return f"{seconds:.0f} s" if seconds < 90 else f"{m} min" if m < 90 else f"{m // 60} h {m % 60:02d} min"


def _bars(progress: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not progress,
    )


def _run_local(
    groups: list[list[Trial]],
    root: Path,
    workers: int,
    retry_failed: bool,
    progress: bool,
    threads: int | None = None,
    metric: str = "auroc",
    keep_checkpoints: bool = False,
) -> list[dict]:
    """One worker runs trials in this process; more use spawned processes sharing the cores. Each of
    ``groups`` (a trial, or a cell's seeds to stack: :func:`cells`) goes to one worker whole."""
    cores = os.cpu_count() or 1
    todo = [t for g in groups for t in g]
    tick = _Ticker(len(todo), metric, None if keep_checkpoints else root)
    workers = max(1, min(workers, len(groups)))
    results: list[dict] = []
    with _bars(progress) as bars:
        overall = bars.add_task(f"grid ({workers} worker{'s' if workers > 1 else ''})", total=len(todo))
        running: dict[str, tuple[Trial, Any]] = {}
        lock = threading.Lock()
        stop = threading.Event()

        def follow() -> None:  # per-trial bars from each run's log.jsonl (one line per finished epoch)
            while not stop.wait(1.0):
                with lock:
                    for t, task in running.values():
                        bars.update(task, completed=_trial_epochs_done(t, root))

        def started(t: Trial) -> None:
            with lock:
                running[t.id] = (t, bars.add_task(f"  {t.id}", total=t.config.epochs or None))

        def finished(t: Trial, res: dict) -> None:
            with lock:
                bars.remove_task(running.pop(t.id)[1])
                bars.advance(overall)
                tick(t, res)
            results.append(res)

        watcher = threading.Thread(target=follow, daemon=True)
        watcher.start()
        try:
            if workers == 1:
                with torch_threads(threads):
                    for g in groups:
                        for t in g:
                            started(t)
                        for t, res in zip(g, _run_cell_in_worker(g, str(root), retry_failed), strict=True):
                            finished(t, res)
            else:
                env = {k: v for k, v in os.environ.items() if k.startswith("GANAD_")}
                ctx = get_context("spawn")
                per_trial = threads or max(1, cores // workers)
                with (
                    ProcessPoolExecutor(
                        workers, mp_context=ctx, initializer=_worker_init, initargs=(per_trial, env)
                    ) as pool,
                    _workers_stop_with_us(pool),
                ):
                    futures: dict[Future, list[Trial]] = {}
                    for g in groups:
                        futures[pool.submit(_run_cell_in_worker, g, str(root), retry_failed)] = g
                    waiting = set(futures)
                    while waiting:
                        done, waiting = wait(waiting, timeout=1.0, return_when=FIRST_COMPLETED)
                        for f in waiting:  # a trial counts as started once its folder appears
                            for t in futures[f]:
                                if t.id not in running and (t.folder(root) / run.CONFIG).is_file():
                                    started(t)
                        for f in done:
                            for t, res in zip(futures[f], f.result(), strict=True):
                                if t.id not in running:
                                    started(t)
                                finished(t, res)
        finally:
            stop.set()
            watcher.join()
    return results


@contextmanager
def _workers_stop_with_us(pool: ProcessPoolExecutor) -> Iterator[None]:
    """A SIGTERM to this process also stops the pool's workers, then exits (status 143).

    Ctrl-C reaches the whole process group, but ``kill PID`` (a scheduler's time
    limit, ``timeout``) reaches only the parent, and the executor would otherwise
    wait for every running trial to end. A stopped trial resumes from its last
    epoch checkpoint on the next run, so stopping at once loses at most one epoch.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def stop(signum: int, frame: object) -> None:
        # ProcessPoolExecutor.terminate_workers() exists from Python 3.14; _processes is what it uses
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.terminate()
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_ray(
    groups: list[list[Trial]],
    root: Path,
    retry_failed: bool,
    progress: bool,
    metric: str = "auroc",
    keep_checkpoints: bool = False,
) -> list[dict]:
    """Send trials to Ray (``RAY_ADDRESS`` or a local instance): one GPU per task if the cluster has GPUs.

    A task is one of ``groups`` (:func:`cells`): a trial, or a cell's seeds to train stacked, which is
    where stacking should pay most (a GPU's small steps are launch-bound)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray needs Ray: pip install 'ganad[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True, log_to_driver=False)
    gpus = ray.cluster_resources().get("GPU", 0)
    cpus_per_trial = int(os.environ.get("GANAD_RAY_CPUS", "1"))
    remote: Callable = ray.remote(num_cpus=cpus_per_trial, num_gpus=1 if gpus else 0)(_run_cell_in_worker)
    env = {k: v for k, v in os.environ.items() if k.startswith("GANAD_")}
    refs = {remote.options(runtime_env={"env_vars": env}).remote(g, str(root), retry_failed): g for g in groups}
    results: list[dict] = []
    total = sum(len(g) for g in groups)
    tick = _Ticker(total, metric, None if keep_checkpoints else root)
    with _bars(progress) as bars:
        overall = bars.add_task("grid (ray)", total=total)
        remaining = list(refs)
        while remaining:
            ready, remaining = ray.wait(remaining, num_returns=1, timeout=5.0)
            for ref in ready:
                for t, res in zip(refs[ref], ray.get(ref), strict=True):
                    results.append(res)
                    bars.advance(overall)
                    tick(t, res)
    return results


def plan(spec: GridSpec, budget: str, root: str | Path, only: dict[str, list[str]] | None = None) -> list[dict]:
    """What ``run_grid`` would do, trial by trial (for ``--dry-run``).

    Each row: the trial id, its state, the settings that vary across the selected trials
    (model, data set, class, seed, hyper-parameters...) and ``estimate_s``, the median time of
    this store's finished trials of the same model and data set (None when there is none).
    """
    root = Path(root)
    trials = select(expand(spec, budget), only)
    records = _read_store(root)
    recorded = {r["trial"] for r in records if r.get("status") == "ok"}
    past: dict[tuple[str, str], list[float]] = {}
    for r in records:
        secs = trial_seconds(r)
        if r.get("status") == "ok" and secs is not None:
            past.setdefault((r.get("model"), r.get("dataset")), []).append(secs)
    configs = [_flat(t.config.to_dict()) for t in trials]
    varying = sorted({k for c in configs for k in c if any(d.get(k) != c.get(k) for d in configs)})
    rows = []
    for t, c in zip(trials, configs, strict=True):
        times = past.get((t.config.model, t.config.dataset))
        rows.append(
            {
                "trial": t.id,
                "state": trial_state(t, root, recorded),
                "varying": {k: c[k] for k in varying if k in c},
                "estimate_s": round(statistics.median(times), 1) if times else None,
            }
        )
    return rows


def plan_summary(rows: list[dict[str, Any]], workers: int) -> str:
    """One paragraph under ``--dry-run``: what would run, and how long from the store's past trials."""
    todo = [r for r in rows if r["state"] != "done"]
    known = [r["estimate_s"] for r in todo if r["estimate_s"] is not None]
    text = f"{len(rows)} trials: {len(rows) - len(todo)} done (skipped), {len(todo)} to run"
    if known:
        total = sum(known)
        text += (
            f"; about {_duration(total)} of trial time for {len(known)} of them (median of this store's "
            f"finished trials of the same model and data set), about {_duration(total / workers)} "
            f"on {workers} worker(s)"
        )
    if len(known) < len(todo):
        text += f"; {len(todo) - len(known)} without a finished trial of their model and data set to estimate from"
    return text


def trial_seconds(rec: dict[str, Any]) -> float | None:
    """A stored trial's wall time: ``wall_seconds`` when recorded, else training plus scoring time."""
    if isinstance(rec.get("wall_seconds"), int | float):
        return float(rec["wall_seconds"])
    train = rec.get("train_seconds")
    if not isinstance(train, int | float):
        return None
    sizes = (rec.get("split") or {}).get("sizes") or {}
    scored = sum(v for k, v in sizes.items() if k in ("val", "test") and isinstance(v, int))
    ms = rec.get("score_ms_per_sample")
    return float(train) + (float(ms) * scored / 1000 if isinstance(ms, int | float) else 0.0)


def _flat(config: dict[str, Any]) -> dict[str, Any]:
    """A config with its model hyper-parameters as top-level ``params.NAME`` keys."""
    flat = {k: v for k, v in config.items() if k not in ("params", "data_dir")}
    flat.update({f"params.{k}": v for k, v in (config.get("params") or {}).items()})
    return flat


def _read_store(root: Path) -> list[dict[str, Any]]:
    try:
        return store.read(root)
    except ConfigError:
        return []


def dumps_plan(rows: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(r) for r in rows)
