"""The one training and scoring loop shared by every detector.

Models only define ``train_step`` and ``score`` (see :mod:`ganad.models.base`);
this module owns everything around them: device choice, seeding, shuffling,
the epoch/step budget, progress, the per-epoch JSON-lines log, checkpoints
(safetensors + JSON, written atomically each epoch), resume, model selection
on validation data, and timing.

Data sets this toolbox targets (MNIST, CIFAR-10, KDD 10 %) fit in memory, so
the whole preprocessed training set is moved to the device once as one tensor
and batches are index slices of it: no per-sample Python, no host round trip
per step.
"""

from __future__ import annotations

import json
import math
import random
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ganad import atomic, checkpoint, config
from ganad.data.types import InputSpec
from ganad.errors import CheckpointError, ConfigError, DataError, ResourceError, TrainingError
from ganad.metrics import auroc
from ganad.models.base import Model
from ganad.resources import require
from ganad.sinks import epoch_numbers

CHECKPOINT = "checkpoint.safetensors"
BEST = "best.safetensors"
LOG = "log.jsonl"


def select_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present (then Apple MPS), else the CPU."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device '{device}'; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' asked for but CUDA is not available here")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise ConfigError(f"device '{device}' asked for but this machine has {n} CUDA device(s)")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"device '{device}' asked for but Apple MPS is not available here")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device '{device}' is not supported; use auto, cpu, cuda, cuda:N or mps")
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a run is repeatable."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


#: samples scored per forward pass: memory, not results (a sample's score never depends on its batch);
#: the detectors' ``score_batch_size`` defaults to it
SCORE_BATCH_SIZE = 256


def _default(name: str) -> Any:
    return config.FIELDS[name].default


@dataclass
class TrainOptions:
    """The budget and bookkeeping of one training run (model-independent).

    Defaults and checks are those of the run settings of the same names (:mod:`ganad.config`).
    """

    epochs: int = _default("epochs")
    steps: int | None = _default("steps")  # total optimisation steps; caps ``epochs`` when set
    batch_size: int = _default("batch_size")
    seed: int = _default("seed")
    device: str = _default("device")
    select_on: str | None = _default("select_on")  # "val", "test", "last"; None = the model's default
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "steps", "batch_size", "seed", "select_on"):
            config.check_setting(name, getattr(self, name), "TrainOptions")


@dataclass
class FitResult:
    epochs_run: int
    steps: int
    train_seconds: float
    selected_epoch: int
    selected_on: str
    selection_metric: float | None
    history: list[dict[str, Any]] = field(default_factory=list)
    threads: int = 1  # torch CPU threads the fit ran with (bit-identical results need the same count)
    #: the validation scores of the weights the fit ended with, when the model's validation score is its
    #: score (:attr:`Model.validation_is_score`): the threshold reuses them instead of scoring again
    val_scores: np.ndarray | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, state: dict[str, Any], selected_on: str, kept: _Kept, model: Model) -> FitResult:
        """The result of a fit from its loop state (the one a checkpoint stores) and what it kept."""
        return cls(
            epochs_run=state["epoch"],
            steps=state["step"],
            train_seconds=state["train_seconds"],
            selected_epoch=state["best_epoch"],
            selected_on=selected_on,
            selection_metric=state["best_metric"],
            history=state["history"],
            threads=int(state["threads"]),
            val_scores=kept.val_scores if model.validation_is_score else None,
        )


@dataclass
class _Kept:
    """What a run ends with: the selected epoch's weights (None: the weights in place) and that epoch's
    validation scores (None when not computed, e.g. before a resume)."""

    weights: dict[str, torch.Tensor] | None = None
    val_scores: np.ndarray | None = None


def is_out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` is an allocation failure: CUDA's OutOfMemoryError, the CPU allocator's, or Python's."""
    if isinstance(e, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and ("can't allocate memory" in text or "not enough memory" in text)


@contextmanager
def memory_guard(doing: str, sizes: str, hint: str) -> Iterator[None]:
    """Turn an allocation failure inside into one ResourceError naming what was being done and the sizes to lower.

    Networks are sized by the user's width, latent size, image size and batch;
    torch's own message ("DefaultCPUAllocator: can't allocate memory: you tried
    to allocate 68719476736 bytes") names none of them.
    """
    try:
        yield
        return
    except (MemoryError, RuntimeError) as e:
        if not is_out_of_memory(e):
            raise
        asked = _asked_bytes(str(e))
        message = f"out of memory {doing} ({sizes}){asked}; {hint}"
    # raised outside the except block: no chained traceback keeps the failed step's tensors alive
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the failed step's buffers are free now that its frames are gone
    raise ResourceError(message)


def _asked_bytes(text: str) -> str:
    """The size torch's message says it failed to allocate, as text for ours ("" when it gives none)."""
    m = re.search(r"allocate (\d+) bytes", text) or re.search(r"allocate ([\d.]+ [KMGT]i?B)", text)
    if not m:
        return ""
    size = m.group(1)
    if size.isdigit():
        n = int(size)
        size = f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"
    return f", one allocation of {size} failed"


def model_sizes(name: str, spec: InputSpec, hparams: dict[str, Any], batch_size: int) -> str:
    """The sizes that set a model's memory: its name, input, batch and size hyper-parameters."""
    keys = ("nz", "width", "extra_layers") if spec.kind == "image" else ("nz",)  # MLPs: fixed widths
    hp = ", ".join(f"{k}={hparams[k]}" for k in keys if k in hparams)
    shape = "x".join(str(d) for d in spec.shape)
    return f"{name}, input {shape}, batch {batch_size}" + (f", {hp}" if hp else "")


def activation_bytes(spec: InputSpec, hparams: dict[str, Any], batch_size: int) -> float:
    """A generous estimate of a conv model's training memory for one batch (0 for MLPs: small by design).

    A DCGAN trunk's first layer holds ``width`` maps at half the input's side and each next
    layer half as many pixels, so one pass stores about ``width / 2`` floats per input pixel
    (with batch norm and activation outputs and their gradients, x4); a step runs up to six
    such passes (encoders, decoder, discriminator on real and fake). Over-counting small inputs
    costs nothing; the point is to refuse 4096x4096 inputs before the kernel kills the process.
    """
    if spec.kind != "image":
        return 0.0
    c, h, w = spec.shape
    width = int(hparams.get("width") or 64)
    return float(batch_size) * (c + width / 2 * 4 * 6) * h * w * 4


def memory_hint(kind: str, resumable: bool = False) -> str:
    """What a user can lower, by name in the Python API and the CLI."""
    if kind == "image":
        text = (
            "lower the batch size, the image size or the network's width "
            "(CLI: --batch-size, --image-size, --set width=32)"
        )
    else:
        text = "lower the batch size or the latent size (CLI: --batch-size, --set nz=32)"
    text += ", or use a machine with more memory"
    return text + ("; --resume continues from the last finished epoch" if resumable else "")


def to_device(x: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=torch.float32)
    return t.to(device, non_blocking=True)


@torch.no_grad()
def score(
    model: Model,
    x: np.ndarray | torch.Tensor,
    batch_size: int = SCORE_BATCH_SIZE,
    *,
    fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = False,
    description: str = "scoring",
) -> np.ndarray:
    """Scores for ``x`` in batches, model in eval mode (batch norm uses running stats).

    Eval mode makes a sample's score independent of the batch it came in; the
    model's train/eval mode is restored afterwards.
    """
    fn = fn or model.score
    was_training = model.training
    model.eval()
    device = model.device
    out: list[torch.Tensor] = []
    n = len(x)
    try:
        sizes = model_sizes(model.name, model.spec, model.hparams, batch_size)
        with memory_guard(description, sizes, memory_hint(model.spec.kind)), _progress(progress) as prog:
            task = prog.add_task(description, total=n, losses="")
            for i in range(0, n, batch_size):
                xb = to_device(x[i : i + batch_size], device)
                with torch.enable_grad():  # latent-search scorers need autograd inside
                    s = fn(xb)
                out.append(s.detach().float().cpu())
                prog.advance(task, len(xb))
    finally:
        model.train(was_training)
    result = torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)
    if result.ndim == 1:  # scores (maps have more dimensions)
        bad = np.flatnonzero(~np.isfinite(result))
        if len(bad):  # NaN > threshold is False: it would be predicted normal without a word
            raise TrainingError(
                f"the score of sample {int(bad[0])} ({len(bad)} of {n} in all) is NaN or inf: the model's output "
                "overflowed (its weights diverged, or the input lies far outside the training range)"
            )
    return result


def anomaly_maps(model: Model, x: np.ndarray, batch_size: int = SCORE_BATCH_SIZE) -> np.ndarray | None:
    """The model's per-pixel / per-feature map for each sample, or None if it has none."""
    if type(model).anomaly_map is Model.anomaly_map:  # the model defines no map
        return None
    return score(model, x, batch_size, fn=model.anomaly_map)


def reconstructions(model: Model, x: np.ndarray, batch_size: int = SCORE_BATCH_SIZE) -> np.ndarray | None:
    """The model's x_hat for each sample (float32, the input's shape), or None if it has none."""
    if type(model).reconstruct is Model.reconstruct:
        return None
    return score(model, x, batch_size, fn=model.reconstruct)


def _terminal() -> bool:
    """Is standard output a terminal? Bars there; plain lines in a log file or a pipe."""
    return sys.stdout.isatty()


def _epoch_line(record: dict[str, Any], epochs: int, total_seconds: float) -> str:
    """One line per finished epoch for a log: epoch, each loss, validation/test AUROC, time."""
    parts = [f"{k}={v:.4g}" for k, v in epoch_numbers(record).items() if k != "seconds"]
    return (
        f"epoch {record['epoch']}/{epochs}  step {record['step']}  {' '.join(parts)}  "
        f"{record['seconds']:.1f} s (total {total_seconds:.0f} s)"
    )


def _progress(enabled: bool) -> Progress:
    """Rich bars on a terminal; off elsewhere (a log gets :func:`_epoch_line` lines instead)."""
    enabled = enabled and _terminal()
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[losses]}"),
        disable=not enabled,
        transient=False,
    )


def fit(
    model: Model,
    train_x: np.ndarray,
    opts: TrainOptions,
    *,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    test: tuple[np.ndarray, np.ndarray] | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
    score_batch_size: int = SCORE_BATCH_SIZE,
    on_epoch: Callable[[dict[str, Any], Model], None] | None = None,
) -> FitResult:
    """Train ``model`` on normal samples ``train_x`` (preprocessed float32).

    Each epoch ends with validation (AUROC on ``val``) and, with ``run_dir``, a
    checkpoint of everything needed to continue bit-for-bit (weights, optimiser
    moments, RNG states, history). ``resume=True`` continues from it. At the
    end the selected epoch's weights are loaded into ``model``:
    ``select_on='val'`` picks the best validation AUROC, ``'test'`` the best
    test AUROC (the papers' habit; every output says so), ``'last'`` the last.

    ``on_epoch(record, model)`` runs after each epoch's record is logged (``ganad train --log``'s
    TensorBoard / MLflow sinks). Running out of memory (a width or batch too big for the machine) is one
    :class:`~ganad.errors.ResourceError` naming the sizes, not torch's message.
    """
    bs = min(opts.batch_size, max(len(train_x), 1))
    sizes = model_sizes(model.name, model.spec, model.hparams, bs)
    hint = memory_hint(model.spec.kind, run_dir is not None)
    require(activation_bytes(model.spec, model.hparams, bs), f"training {sizes}", hint)
    threads = torch.get_num_threads()
    try:
        with memory_guard(f"training on {model.device}", sizes, hint):
            return _fit(model, train_x, opts, val, test, run_dir, resume, score_batch_size, on_epoch)
    finally:
        torch.set_num_threads(threads)  # a resume runs at the thread count its run started with


_Labelled = tuple[np.ndarray, np.ndarray]  # (samples, labels with 1 = anomaly)


def _selection(model: Model, opts: TrainOptions, val: _Labelled | None, test: _Labelled | None) -> str:
    """What a run selects its epoch on: the option, else the model's default; "last" when the data to
    select on is missing or holds one class only."""
    select_on = opts.select_on or model.default_selection
    data = {"val": val, "test": test}.get(select_on)
    if select_on in ("val", "test") and (data is None or len(np.unique(data[1])) < 2):
        return "last"  # nothing with both classes to select on
    return select_on


def _budget(opts: TrainOptions, n: int) -> tuple[int, int, int, int]:
    """(batch size, batches per epoch, total steps, epochs) of a run on ``n`` training samples."""
    if n < 2:
        raise DataError(f"training needs at least 2 normal samples, got n_samples={n}")
    bs = min(opts.batch_size, n)
    batches = n // bs  # drop_last, as the reference loaders do: batch norm needs full batches
    total_steps = opts.steps if opts.steps is not None else opts.epochs * batches
    return bs, batches, total_steps, math.ceil(total_steps / batches)


def _new_state() -> dict[str, Any]:
    """The loop state a run starts from (and its checkpoint stores)."""
    return {
        "epoch": 0,
        "step": 0,
        "train_seconds": 0.0,
        "history": [],
        "best_epoch": 0,
        "best_metric": None,
        "threads": torch.get_num_threads(),
    }


def _fit(
    model: Model,
    train_x: np.ndarray,
    opts: TrainOptions,
    val: _Labelled | None,
    test: _Labelled | None,
    run_dir: Path | None,
    resume: bool,
    score_batch_size: int,
    on_epoch: Callable[[dict[str, Any], Model], None] | None = None,
) -> FitResult:
    """:func:`fit` without the memory guard."""
    device = model.device
    select_on = _selection(model, opts, val, test)
    n = len(train_x)
    bs, batches, total_steps, epochs = _budget(opts, n)

    x_dev = to_device(train_x, device)
    gen = torch.Generator().manual_seed(opts.seed)
    state = _new_state()
    kept = _Kept()

    if resume and run_dir is not None and (run_dir / CHECKPOINT).is_file():
        meta = checkpoint.read_meta(run_dir / CHECKPOINT)
        if meta.get("fit", {}).get("model") != model.describe():
            diff = "; ".join(checkpoint.differences(meta.get("fit", {}).get("model"), model.describe()))
            raise CheckpointError(f"{run_dir / CHECKPOINT}: was written for another model or input ({diff})")
        extra = checkpoint.load_into(model, run_dir / CHECKPOINT, meta, with_optimizers=True)
        state = meta["fit"]["state"]
        # float sums split across threads differ in their last bits: a resume at another thread
        # count (--threads, GANAD_NUM_THREADS, --workers) would silently change the result, so it
        # runs at the count the run started with (restored when fit returns)
        recorded = state.setdefault("threads", torch.get_num_threads())
        if isinstance(recorded, int) and recorded >= 1 and recorded != torch.get_num_threads():
            torch.set_num_threads(recorded)
        torch.set_rng_state(extra["torch_rng"])
        gen.set_state(extra["shuffle_rng"])
        if device.type == "cuda" and "cuda_rng" in extra:
            torch.cuda.set_rng_state(extra["cuda_rng"])
        if (run_dir / BEST).is_file():
            kept.weights = {k[len("model.") :]: v for k, v in checkpoint.read_tensors(run_dir / BEST).items()}
        # the log may hold an epoch that finished after the last checkpoint: replay history instead
        atomic.atomic_write_bytes(run_dir / LOG, "".join(json.dumps(r) + "\n" for r in state["history"]).encode())
    else:
        if run_dir is not None:
            (run_dir / LOG).unlink(missing_ok=True)
        model.prepare(x_dev)  # once, from all training data; a resumed model has it in its checkpoint

    if model.fits_in_one_pass:
        return _fit_once(model, x_dev, opts, val, run_dir, state, gen, score_batch_size, on_epoch)
    model.train()
    with _progress(opts.progress) as prog:
        task = prog.add_task("training", total=total_steps, completed=state["step"], losses="")
        while state["epoch"] < epochs and state["step"] < total_steps:
            epoch = state["epoch"] + 1
            t0 = time.perf_counter()
            sums: dict[str, float] = {}
            perm = torch.randperm(n, generator=gen).to(device)
            # a second, independent shuffle for models that train D and G on different batches
            # (drawn after the first, so models without it keep their shuffles bit for bit)
            perm2 = torch.randperm(n, generator=gen).to(device) if model.paired_batches else None
            nb = 0
            for b in range(batches):
                if state["step"] >= total_steps:
                    break
                xb2 = None if perm2 is None else x_dev[perm2[b * bs : (b + 1) * bs]]
                losses = _step(model, x_dev[perm[b * bs : (b + 1) * bs]], xb2, epoch, state["step"], sums)
                state["step"] += 1
                nb += 1
                if nb % 5 == 0 or b == batches - 1:
                    prog.update(
                        task,
                        completed=state["step"],
                        description=f"epoch {epoch}/{epochs}",
                        losses=" ".join(f"{k}={v:.4g}" for k, v in losses.items()),
                    )
            _check_weights(model, epoch)
            seconds = time.perf_counter() - t0
            state["train_seconds"] += seconds
            record: dict[str, Any] = {
                "epoch": epoch,
                "step": state["step"],
                "seconds": round(seconds, 3),
                **{k: v / max(nb, 1) for k, v in sums.items()},
            }
            _close_epoch(model, record, state, kept, val, test, select_on, score_batch_size, run_dir, opts, gen, epochs)
            if on_epoch is not None:
                on_epoch(record, model)
    if kept.weights is not None and select_on != "last":
        model.load_state_dict(kept.weights)
    model.eval()
    return FitResult.of(state, select_on, kept, model)


def fit_seeds(
    models: list[Model],
    train_xs: list[np.ndarray],
    opts: list[TrainOptions],
    *,
    vals: list[_Labelled | None] | None = None,
    tests: list[_Labelled | None] | None = None,
    run_dirs: list[Path | None] | None = None,
    resume: bool = False,
    score_batch_size: int = SCORE_BATCH_SIZE,
    stack_seeds: bool = True,
) -> list[FitResult]:
    """:func:`fit` for K runs that differ only in their seed (one model each, built under its seed),
    trained as one stacked model when they can be (:mod:`ganad.stacking`), else one after another.

    Each run keeps its own data order (its seed's shuffle generator), validation, model selection,
    log, checkpoint and result, as a solo :func:`fit`; the stacked step does the work of K. A run's
    ``train_seconds`` is its share (1/K) of the stack's time. Stacked runs start from scratch: with
    ``resume`` and a checkpoint in any run folder, or models that cannot be stacked, or training sets
    of different sizes, each run is a solo :func:`fit` (same results within float rounding, see
    :mod:`ganad.stacking` for what is not bit-identical).
    """
    from ganad.stacking import stack, unstack_into, why_not_stackable

    k = len(models)
    vals = vals or [None] * k
    tests = tests or [None] * k
    run_dirs = run_dirs or [None] * k
    budgets = {(o.epochs, o.steps, min(o.batch_size, len(x)), o.select_on) for o, x in zip(opts, train_xs, strict=True)}
    resumable = resume and any(d is not None and (d / CHECKPOINT).is_file() for d in run_dirs)
    if (
        not stack_seeds
        or k < 2
        or why_not_stackable(models[0])
        or len({len(x) for x in train_xs}) > 1
        or len(budgets) > 1
        or resumable
        or any(m.describe()["hparams"] != models[0].describe()["hparams"] for m in models[1:])
    ):
        return [
            fit(m, x, o, val=v, test=t, run_dir=d, resume=resume, score_batch_size=score_batch_size)
            for m, x, o, v, t, d in zip(models, train_xs, opts, vals, tests, run_dirs, strict=True)
        ]
    bs = min(opts[0].batch_size, len(train_xs[0]))
    sizes = f"{k} stacked seeds of " + model_sizes(models[0].name, models[0].spec, models[0].hparams, bs)
    hint = memory_hint(models[0].spec.kind, any(d is not None for d in run_dirs))
    need = activation_bytes(models[0].spec, models[0].hparams, bs) * k
    require(need, f"training {sizes}", hint + f"; or stack fewer seeds than {k} (--no-stack-seeds: one at a time)")
    threads = torch.get_num_threads()
    try:
        with memory_guard(f"training on {models[0].device}", sizes, hint):
            return _fit_stacked(models, train_xs, opts, vals, tests, run_dirs, score_batch_size, stack, unstack_into)
    finally:
        torch.set_num_threads(threads)


def _fit_stacked(
    models: list[Model],
    train_xs: list[np.ndarray],
    opts: list[TrainOptions],
    vals: list[_Labelled | None],
    tests: list[_Labelled | None],
    run_dirs: list[Path | None],
    score_batch_size: int,
    stack: Callable[[list[Model]], Model],
    unstack_into: Callable[[Model, int, Model], None],
) -> list[FitResult]:
    """:func:`fit_seeds` once the runs can be stacked: one loop, each epoch closed per run."""
    k, device = len(models), models[0].device
    n = len(train_xs[0])
    bs, batches, total_steps, epochs = _budget(opts[0], n)
    x_devs = [to_device(x, device) for x in train_xs]
    gens = [torch.Generator().manual_seed(o.seed) for o in opts]
    selects = [_selection(m, o, v, t) for m, o, v, t in zip(models, opts, vals, tests, strict=True)]
    states = [_new_state() for _ in models]
    kept = [_Kept() for _ in range(k)]
    for d in run_dirs:
        if d is not None:
            (d / LOG).unlink(missing_ok=True)
    for m, xd in zip(models, x_devs, strict=True):
        m.prepare(xd)  # each seed's own (a dual model's centre), before the weights are stacked
    stacked = stack(models)
    stacked.train()
    step = 0
    with _progress(opts[0].progress) as prog:
        task = prog.add_task(f"training {k} seeds", total=total_steps, completed=0, losses="")
        for epoch in range(1, epochs + 1):
            if step >= total_steps:
                break
            t0 = time.perf_counter()
            sums: dict[str, float] = {}
            perms = [torch.randperm(n, generator=g).to(device) for g in gens]
            perms2 = [torch.randperm(n, generator=g).to(device) for g in gens] if stacked.paired_batches else None
            nb = 0
            for b in range(batches):
                if step >= total_steps:
                    break
                rows = slice(b * bs, (b + 1) * bs)
                xb = torch.cat([x[p[rows]] for x, p in zip(x_devs, perms, strict=True)])
                xb2 = None if perms2 is None else torch.cat([x[p[rows]] for x, p in zip(x_devs, perms2, strict=True)])
                losses = _step(stacked, xb, xb2, epoch, step, sums, f" of {k} stacked seeds")
                step += 1
                nb += 1
                if nb % 5 == 0 or b == batches - 1:
                    prog.update(
                        task,
                        completed=step,
                        description=f"epoch {epoch}/{epochs}, {k} seeds",
                        losses=" ".join(f"{n_}={v:.4g}" for n_, v in losses.items()),
                    )
            _check_weights(stacked, epoch, f" of {k} stacked seeds")
            seconds = (time.perf_counter() - t0) / k  # each seed's share of the stack's time
            for i, m in enumerate(models):
                unstack_into(stacked, i, m)
                states[i]["step"] = step
                states[i]["train_seconds"] += seconds
                record: dict[str, Any] = {
                    "epoch": epoch,
                    "step": step,
                    "seconds": round(seconds, 3),
                    **{name: v / max(nb, 1) for name, v in sums.items()},
                }
                _close_epoch(
                    m,
                    record,
                    states[i],
                    kept[i],
                    vals[i],
                    tests[i],
                    selects[i],
                    score_batch_size,
                    run_dirs[i],
                    opts[i],
                    gens[i],
                    epochs,
                )
    results = []
    for m, state, sel, kp in zip(models, states, selects, kept, strict=True):
        if kp.weights is not None and sel != "last":
            m.load_state_dict(kp.weights)
        m.eval()
        results.append(FitResult.of(state, sel, kp, m))
    return results


def _step(
    model: Model,
    xb: torch.Tensor,
    xb2: torch.Tensor | None,
    epoch: int,
    step: int,
    sums: dict[str, float],
    where: str = "",
) -> dict[str, float]:
    """One ``train_step`` (on a second shuffle's batch too, for ``paired_batches`` models), its losses
    added to the epoch's ``sums``; a NaN or inf loss is a TrainingError naming it."""
    losses = model.train_step(xb) if xb2 is None else model.train_step(xb, xb2)
    bad = [k for k, v in losses.items() if not math.isfinite(v)]
    if bad:
        raise TrainingError(
            f"loss '{bad[0]}' became {losses[bad[0]]} at epoch {epoch}, step {step + 1}{where}; "
            "the last good checkpoint is kept (try a lower learning rate)"
        )
    for k, v in losses.items():
        sums[k] = sums.get(k, 0.0) + v
    return losses


def _check_weights(model: Model, epoch: int, where: str = "") -> None:
    """Finite losses can still leave NaN weights (an update that overflowed): never checkpoint those."""
    bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise TrainingError(
            f"weights '{bad[0]}' became NaN or inf during epoch {epoch}{where} (its losses stayed finite); "
            "the last good checkpoint is kept (try a lower learning rate)"
        )


def _close_epoch(
    model: Model,
    record: dict[str, Any],
    state: dict[str, Any],
    kept: _Kept,
    val: _Labelled | None,
    test: _Labelled | None,
    select_on: str,
    score_batch_size: int,
    run_dir: Path | None,
    opts: TrainOptions,
    gen: torch.Generator,
    epochs: int,
) -> None:
    """The end of one epoch of one run: validation, model selection, the epoch's log line and
    checkpoint. Updates ``kept`` with the selected weights and validation scores so far. Solo and
    stacked runs (each seed's slice copied into its solo model, :func:`fit_seeds`) go through this one
    function."""
    epoch = record["epoch"]
    val_scores = None
    if val is not None and len(np.unique(val[1])) == 2:
        val_scores = score(model, val[0], score_batch_size, fn=model.validation_score)
        record["val_auroc"] = auroc(val[1], val_scores)
    if select_on == "test" and test is not None:
        record["test_auroc"] = auroc(test[1], score(model, test[0], score_batch_size, fn=model.validation_score))
    state["epoch"] = epoch
    metric = record.get(f"{select_on}_auroc")
    improved = metric is not None and (state["best_metric"] is None or metric > state["best_metric"])
    if select_on == "last" or improved:
        state["best_epoch"], state["best_metric"] = epoch, metric
        kept.val_scores = val_scores
        if select_on != "last":
            kept.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if run_dir is not None:
                checkpoint.atomic_save_tensors(run_dir / BEST, {f"model.{k}": v for k, v in kept.weights.items()})
    state["history"].append(record)
    if opts.progress and not _terminal():
        print(_epoch_line(record, epochs, state["train_seconds"]), flush=True)
    if run_dir is not None:
        _append_log(run_dir / LOG, record)
        _save_checkpoint(run_dir, model, state, opts, gen)


def _save_checkpoint(
    run_dir: Path, model: Model, state: dict[str, Any], opts: TrainOptions, gen: torch.Generator
) -> None:
    """Everything a resume needs to continue bit-for-bit: weights, optimiser moments, RNG states, history."""
    extra = {"torch_rng": torch.get_rng_state(), "shuffle_rng": gen.get_state()}
    if model.device.type == "cuda":
        extra["cuda_rng"] = torch.cuda.get_rng_state()
    checkpoint.save(
        run_dir / CHECKPOINT,
        model,
        {"fit": {"model": model.describe(), "state": state, "options": asdict(opts)}},
        with_optimizers=True,
        extra_tensors=extra,
    )


def _append_log(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line (a resumed run first rewrites the log from the checkpoint's history)."""
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def _fit_once(
    model: Model,
    x_dev: torch.Tensor,
    opts: TrainOptions,
    val: _Labelled | None,
    run_dir: Path | None,
    state: dict[str, Any],
    gen: torch.Generator,
    score_batch_size: int,
    on_epoch: Callable[[dict[str, Any], Model], None] | None = None,
) -> FitResult:
    """The epoch loop's counterpart for ``fits_in_one_pass`` models (the non-GAN baselines).

    One call of ``fit_normal`` on the whole training tensor is recorded as one epoch of one
    step (same history record, log line, timing and checkpoint as an epoch of the loop), so
    run folders, reports and grids need no special case. Selection is always "last": there
    is only one state. A resumed run whose fit finished has nothing left to do; one killed
    during the fit left no checkpoint and fits again.
    """
    kept = _Kept()
    if state["epoch"] == 0:
        t0 = time.perf_counter()
        logged = model.fit_normal(x_dev)
        seconds = time.perf_counter() - t0
        record: dict[str, Any] = {"epoch": 1, "step": 1, "seconds": round(seconds, 3), **logged}
        if val is not None and len(np.unique(val[1])) == 2:
            kept.val_scores = score(model, val[0], score_batch_size)
            record["val_auroc"] = auroc(val[1], kept.val_scores)
        state.update(epoch=1, step=1, train_seconds=seconds, best_epoch=1, best_metric=None)
        state["history"].append(record)
        if run_dir is not None:
            _append_log(run_dir / LOG, record)
            _save_checkpoint(run_dir, model, state, opts, gen)
        if on_epoch is not None:
            on_epoch(record, model)
    model.eval()
    return FitResult.of(state, "last", kept, model)
