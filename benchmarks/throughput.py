"""Training throughput of every detector, its FLOP rate and the fraction of the machine's peak it reaches.

Prints one JSON document (also written to ``--out``). For each detector in the
registry, the conv variant at 32x32x1, batch 64, on real MNIST images and the
MLP variant on real KDD Cup 99 rows (121 features, batch 50):

* ``images_per_s``: samples trained per second through ``engine.fit`` (the
  engine's loop around the model's ``train_step``: shuffling, loss
  bookkeeping, divergence check), median of ``--repeats`` timed fits of a fixed
  number of steps after a warm-up fit. ``FitResult.train_seconds`` is used, so
  the one-off copy of the data to the device is not counted.
* ``flops_per_step``: FLOPs of one ``train_step`` (forward and backward of every
  optimiser step in it) counted by ``torch.utils.flop_counter.FlopCounterMode``
  (matmuls and convolutions; element-wise ops are not counted, as usual).
* ``achieved_gflops`` = flops/step x steps/s, and ``fraction_of_peak`` against
  ``peak.gflops`` measured on the same thread count: the faster of a 2048x2048
  float32 matmul (MKL) and a large 3x3 convolution (oneDNN). On this AMD CPU
  MKL's matmul reaches only about half of what oneDNN's convolution does, so a
  matmul-only peak would report conv nets above 100 %.
* ``score_ms_per_sample``: ``engine.score`` in eval mode (AnoGAN at the paper's
  Γ = 500 latent-search steps, on fewer samples because it is slow).

Speed is noisy on a shared 2-core machine, so every timed block records
``others_cores``: how many cores other processes kept busy while it ran (0 =
undisturbed, 1 = a whole core taken), and ``load`` the load averages.

Modes:

* default: one configuration, set by ``--threads``, ``--channels-last``, ...
* ``--compare``: several configurations (``VARIANTS``) measured *in one
  process, interleaved*: one model per variant, then round-robin timed fits
  (variant A, B, C, A, B, C, ...), so that load which comes and goes hits
  every variant alike; the median per variant and its ratio to the first are
  printed side by side. ``before-edits`` replays the training step as it was
  before the hot-path edits (no frozen nets, per-tensor Adam, AnoGAN's f(x)
  recomputed at every search step), so the edits' gain is measured, not assumed.
* ``--compare-processes NAME=ARGS ...``: one process per configuration, for
  what can be set only once per process (inter-op threads, OpenMP environment,
  another ganad source tree with ``--src``). Processes run one after another,
  so load drift between them is *not* cancelled: read ``others_cores``.

Usage:
  python benchmarks/throughput.py --threads 1 --out docs/results/throughput.json
  python benchmarks/throughput.py --compare --rounds 5 --out docs/results/throughput_compare.json
  python benchmarks/throughput.py --compare-processes "threads-1=--threads 1" "threads-2=--threads 2" \
      "interop-1=--threads 2 --interop 1" "omp-passive=--threads 2 --env OMP_WAIT_POLICY=PASSIVE" --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

BATCH = {"image": 64, "tabular": 50}


@dataclasses.dataclass(frozen=True)
class Variant:
    """One configuration of the hot path; every knob can be switched within a process.

    (Switching ``threads`` within a process taints the blocks that follow, so
    --compare keeps every variant on one thread; see ``VARIANTS``.)
    """

    threads: int | None = None  # torch.set_num_threads; None = torch's default (all cores)
    channels_last: bool = False  # conv nets' weights and image batches in NHWC
    compile: bool = False  # torch.compile every net of the model, in place
    mkldnn: bool = True  # torch.backends.mkldnn.enabled
    flush_denormal: bool = False  # torch.set_flush_denormal
    fused_adam: bool = False  # Adam(fused=True): faster on CPU, not bit-identical
    hot_path: bool = True  # False = the training step as before the edits (see module docstring)


#: --compare's variants; the first is the reference for the ratios; ``control`` is the reference
#: again, so its speed-up shows the noise of the comparison itself. All run on one thread: a
#: two-thread block leaves the next one-thread block in the same process 10-30 % slower (OpenMP's
#: idle team), and with other jobs on the machine two threads swamp every other effect. Thread
#: counts are compared with --compare-processes instead (a fresh process each, as users run).
VARIANTS: dict[str, Variant] = {
    "reference": Variant(threads=1),
    "before-edits": Variant(threads=1, hot_path=False),
    "channels-last": Variant(threads=1, channels_last=True),
    "mkldnn-off": Variant(threads=1, mkldnn=False),
    "flush-denormal": Variant(threads=1, flush_denormal=True),
    "fused-adam": Variant(threads=1, fused_adam=True),
    "compile": Variant(threads=1, compile=True),
    "control": Variant(threads=1),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=None, help="registry names (default: all)")
    ap.add_argument("--inputs", nargs="+", default=["mnist-32x32", "kdd99-121"])
    ap.add_argument("--conv-steps", type=int, default=6, help="train steps per timed fit, conv nets")
    ap.add_argument("--mlp-steps", type=int, default=100, help="train steps per timed fit, MLPs")
    ap.add_argument("--warmup-steps", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="timed fits per model (median reported)")
    ap.add_argument("--score-n", type=int, default=256, help="samples scored per model")
    ap.add_argument("--anogan-score-n", type=int, default=8, help="samples scored by AnoGAN (Γ=500 search)")
    ap.add_argument("--no-score", action="store_true", help="measure training only")
    ap.add_argument("--peak-n", type=int, default=2048, help="matmul size for the peak GFLOP/s")
    knobs = ap.add_argument_group("one configuration (default mode and --compare-processes)")
    knobs.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    knobs.add_argument("--interop", type=int, default=None, help="torch.set_num_interop_threads")
    knobs.add_argument("--channels-last", action="store_true", help="conv nets and image batches in NHWC")
    knobs.add_argument("--compile", action="store_true", help="torch.compile every net of the model (in place)")
    knobs.add_argument("--no-mkldnn", action="store_true", help="torch.backends.mkldnn.enabled = False")
    knobs.add_argument("--flush-denormal", action="store_true", help="torch.set_flush_denormal(True)")
    knobs.add_argument("--fused-adam", action="store_true", help="Adam(fused=True)")
    knobs.add_argument("--before-edits", action="store_true", help="the training step as before the hot-path edits")
    knobs.add_argument("--env", action="append", default=[], help="KEY=VALUE set before torch loads (OpenMP)")
    knobs.add_argument("--src", default=None, help="import ganad from this source tree (e.g. an export of HEAD)")
    ap.add_argument("--data-dir", default=os.environ.get("GANAD_DATA_DIR"))
    ap.add_argument("--inputs-file", default=None, help=argparse.SUPPRESS)  # cached inputs from --compare-processes
    ap.add_argument("--load-note", default="", help="what else ran on the machine (recorded as load.note)")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    ap.add_argument("--compare", action="store_true", help="every VARIANTS entry, interleaved in this process")
    ap.add_argument("--variants", nargs="+", default=None, help="--compare: a subset of " + ", ".join(VARIANTS))
    ap.add_argument(
        "--compare-processes", nargs="+", default=None, metavar="NAME=ARGS", help="one process per configuration"
    )
    ap.add_argument("--rounds", type=int, default=None, help="--compare*: rounds (default: --repeats)")
    return ap.parse_args(argv)


# -- measuring ------------------------------------------------------------------------------------------


def peak_gflops(n: int, repeats: int = 5) -> dict[str, Any]:
    """The machine's float32 rate on the current thread count: the ceiling for dense nets.

    Two kernels, because on this AMD CPU they differ by 2x: ``matmul``, an
    n x n float32 matmul (MKL's sgemm, which takes a slower, non-AVX-512 path
    on non-Intel CPUs), and ``conv``, a 3x3 convolution (128 -> 256 channels,
    16x16, batch 32; oneDNN, which uses AVX-512 wherever the CPU has it). The
    conv nets run on oneDNN and the MLPs on MKL, so ``gflops`` (the peak the
    fractions are relative to) is the larger of the two, and both are kept.
    """
    import torch
    import torch.nn.functional as F
    from _common import CpuMeter, median_seconds

    a, b = torch.randn(n, n), torch.randn(n, n)
    x, w = torch.randn(32, 128, 16, 16), torch.randn(256, 128, 3, 3)
    kernels = {
        "matmul": (lambda: a @ b, 2 * n**3),
        "conv": (lambda: F.conv2d(x, w, padding=1), 2 * 32 * 256 * 16 * 16 * 128 * 9),
    }
    out: dict[str, Any] = {"threads": torch.get_num_threads(), "matmul_n": n}
    with CpuMeter() as meter:
        for name, (fn, flops) in kernels.items():
            fn()  # warm-up: the library picks its kernel
            med, times = median_seconds(fn, repeats)
            out[name] = {
                "gflops": round(flops / med / 1e9, 1),
                "gflops_best": round(flops / min(times) / 1e9, 1),
                "seconds": [round(t, 4) for t in times],
            }
    out["gflops"] = max(out[k]["gflops"] for k in kernels)
    out["others_cores"] = meter.others_cores
    return out


@contextlib.contextmanager
def applied(v: Variant) -> Iterator[None]:
    """Process-wide settings of ``v`` for the enclosed block, restored afterwards."""
    import torch

    from ganad import engine
    from ganad.models import anogan, dual_adversarial, ganomaly

    saved = (torch.get_num_threads(), torch.backends.mkldnn.enabled, engine.to_device, anogan.AnoGAN.search_loss)
    # (a --src tree from before the edits has no ``frozen``: nothing to undo there)
    saved_frozen = {m: m.frozen for m in (anogan, ganomaly, dual_adversarial) if hasattr(m, "frozen")}
    try:
        if v.threads is not None:
            torch.set_num_threads(v.threads)
        torch.backends.mkldnn.enabled = v.mkldnn
        torch.set_flush_denormal(v.flush_denormal)
        if v.channels_last:
            plain = engine.to_device

            def to_device_nhwc(x: Any, device: torch.device) -> torch.Tensor:
                t = plain(x, device)
                return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t

            engine.to_device = to_device_nhwc  # batches are index slices of the NHWC training tensor
        if not v.hot_path:
            for m in saved_frozen:
                m.frozen = lambda *nets: contextlib.nullcontext()  # type: ignore[assignment,misc]
            search_loss = saved[3]
            anogan.AnoGAN.search_loss = lambda self, x, z, feat_x=None: search_loss(self, x, z)  # type: ignore[method-assign]
        yield
    finally:
        torch.set_num_threads(saved[0])
        torch.backends.mkldnn.enabled = saved[1]
        torch.set_flush_denormal(False)
        engine.to_device, anogan.AnoGAN.search_loss = saved[2], saved[3]  # type: ignore[method-assign]
        for m, f in saved_frozen.items():
            m.frozen = f  # type: ignore[assignment]


def make_model(key: str, spec: Any, v: Variant) -> Any:
    """A seeded detector with ``v``'s memory format, optimiser flavour and compilation applied."""
    import torch

    from ganad.models import MODELS

    torch.manual_seed(0)
    model = MODELS[key](spec)
    for opt in model.optimizers.values():
        for group in opt.param_groups:
            if v.fused_adam:
                group.update(fused=True, foreach=False)
            elif not v.hot_path:
                group["foreach"] = None  # torch's default before the edits: per-tensor on the CPU
    if v.channels_last and spec.kind == "image":
        model.to(memory_format=torch.channels_last)
    if v.compile:
        # EGBAD's step back-propagates one graph twice (retain_graph=True), which compiled backward
        # functions with donated buffers refuse; torch's own advice is to turn donation off
        torch._functorch.config.donated_buffer = False
        for net in model.children():
            net.compile()  # in place: parameter names (and checkpoints) stay the same
    return model


def train_flops(key: str, spec: Any, xb: Any, v: Variant) -> int:
    """FLOPs of one train_step (forward and backward of every optimiser step in it), uncompiled."""
    from torch.utils.flop_counter import FlopCounterMode

    plain = dataclasses.replace(v, compile=False, channels_last=False, fused_adam=False)
    model = make_model(key, spec, plain)
    with applied(plain), FlopCounterMode(display=False) as counter:
        model.train_step(xb)
    return int(counter.get_total_flops())


def measure(
    key: str, spec: Any, x: np.ndarray, variants: dict[str, Variant], args: argparse.Namespace, rounds: int
) -> dict[str, dict[str, Any]]:
    """Training samples/s (and scoring ms/sample) of one detector under each variant, interleaved round-robin."""
    import torch
    from _common import CpuMeter

    from ganad import engine

    bs = BATCH[spec.kind]
    steps = args.conv_steps if spec.kind == "image" else args.mlp_steps
    train_x = x[: bs * steps]
    if len(train_x) < bs * steps:
        raise SystemExit(f"{key}: need {bs * steps} samples, have {len(train_x)}")
    opts = engine.TrainOptions(steps=args.warmup_steps, batch_size=bs, device="cpu", progress=False, select_on="last")
    n_score = min(args.anogan_score_n if key == "anogan" else args.score_n, len(x))
    out: dict[str, dict[str, Any]] = {}
    models: dict[str, Any] = {}
    for name, v in variants.items():
        try:
            flops = train_flops(key, spec, torch.as_tensor(x[:bs]), v)
            models[name] = make_model(key, spec, v)
            with applied(v):
                t0 = time.perf_counter()
                engine.fit(models[name], train_x, opts)  # warm-up: oneDNN primitive cache, allocator, compilation
                warmup = time.perf_counter() - t0
                score_warmup = None
                if not args.no_score:
                    t0 = time.perf_counter()
                    engine.score(models[name], x[: min(8, n_score)])  # warm-up (recompiles for eval mode)
                    score_warmup = round(time.perf_counter() - t0, 2)
        except Exception as e:  # a variant torch cannot run here: record it, measure the others
            out[name] = {"error": f"{type(e).__name__}: {str(e)[:500]}"}
            models.pop(name, None)
            print(f"  {key} {name}: failed: {type(e).__name__}: {str(e)[:200]}", file=sys.stderr)
            continue
        out[name] = {
            "batch_size": bs,
            "steps_per_repeat": steps,
            "flops_per_step": flops,
            "gflop_per_step": round(flops / 1e9, 4),
            "warmup_seconds": round(warmup, 2),
            "train_seconds": [],
            "others_cores": [],
        }
        if score_warmup is not None:
            out[name].update(score_samples=n_score, score_warmup_seconds=score_warmup, score_seconds=[])
    for r in range(rounds):
        for name, model in models.items():
            rec = out[name]
            with applied(variants[name]):
                # one untimed step first: the previous block (other thread count, other weights) leaves
                # OpenMP threads spinning and caches cold, which would be charged to whoever comes next
                engine.fit(model, train_x[:bs], engine.TrainOptions(**{**opts.__dict__, "steps": 1}))
                with CpuMeter() as meter:
                    res = engine.fit(
                        model, train_x, engine.TrainOptions(**{**opts.__dict__, "steps": steps, "seed": r})
                    )
                rec["train_seconds"].append(round(res.train_seconds, 4))
                rec["others_cores"].append(meter.others_cores)
                if "score_seconds" in rec:
                    t0 = time.perf_counter()
                    engine.score(model, x[:n_score])
                    rec["score_seconds"].append(round(time.perf_counter() - t0, 4))
    for name in models:
        rec = out[name]
        med = statistics.median(rec["train_seconds"])
        rec["images_per_s"] = round(bs * steps / med, 1)
        rec["steps_per_s"] = round(steps / med, 3)
        rec["achieved_gflops"] = round(rec["flops_per_step"] * steps / med / 1e9, 2)
        if "score_seconds" in rec:
            rec["score_ms_per_sample"] = round(1000 * statistics.median(rec["score_seconds"]) / n_score, 3)
    return out


def run(args: argparse.Namespace, variants: dict[str, Variant]) -> dict[str, Any]:
    """Measure every input x model x variant; the document both modes print."""
    for kv in args.env:  # before the first torch import: OpenMP reads its settings once
        key, _, val = kv.partition("=")
        os.environ[key] = val
    if args.src:
        sys.path.insert(0, str(Path(args.src).resolve()))
    import torch

    if args.interop is not None:
        torch.set_num_interop_threads(args.interop)  # once per process, before any parallel work
    from _common import machine

    import ganad
    from ganad.models import MODELS

    keys = args.models or list(MODELS)
    rounds = args.rounds or args.repeats
    n = max(BATCH["image"] * args.conv_steps, BATCH["tabular"] * args.mlp_steps, args.score_n, args.anogan_score_n)
    inputs = load_inputs(args, n)
    load_start = machine()["load_avg_1m_5m_15m"]
    peaks: dict[int, dict[str, Any]] = {}
    for v in variants.values():
        with applied(v):
            t = torch.get_num_threads()
            if t not in peaks:
                peaks[t] = peak_gflops(args.peak_n)
    doc: dict[str, Any] = {
        "benchmark": "throughput",
        "ganad": {"version": ganad.__version__, "src": str(Path(ganad.__file__).parent)},
        "variants": {name: dataclasses.asdict(v) for name, v in variants.items()},
        "process": {"interop_threads": torch.get_num_interop_threads(), "env": args.env},
        "budget": {
            "conv_steps_per_repeat": args.conv_steps,
            "mlp_steps_per_repeat": args.mlp_steps,
            "warmup_steps": args.warmup_steps,
            "repeats": rounds,
            "score_n": None if args.no_score else args.score_n,
            "anogan_score_n": None if args.no_score else args.anogan_score_n,
            "anogan_search_steps": None if args.no_score else MODELS["anogan"].defaults["search_steps"],
        },
        "machine": machine(next(iter(variants.values())).threads if len(variants) == 1 else None),
        "peak": {str(t): p for t, p in peaks.items()},
        "results": {},
    }
    for name in args.inputs:
        spec, x = inputs[name]
        doc["results"][name] = {}
        for key in keys:
            per_variant = measure(key, spec, x, variants, args, rounds)
            for vname, r in per_variant.items():
                if "achieved_gflops" in r:
                    t = variants[vname].threads or torch.get_num_threads()
                    r["fraction_of_peak"] = round(r["achieved_gflops"] / peaks[t]["gflops"], 4)
                    print(f"{name} {key} {vname}: {r['images_per_s']} samples/s", file=sys.stderr, flush=True)
            doc["results"][name][key] = per_variant if len(variants) > 1 else next(iter(per_variant.values()))
    others = [
        o
        for res in doc["results"].values()
        for cell in res.values()
        for r in (cell.values() if len(variants) > 1 else [cell])
        if isinstance(r, dict)
        for o in r.get("others_cores", [])
        if o is not None
    ]
    doc["load"] = {
        "load_avg_start": load_start,
        "load_avg_end": machine()["load_avg_1m_5m_15m"],
        "others_cores_max": max(others, default=None),
        "others_cores_mean": round(statistics.mean(others), 2) if others else None,
        "disturbed": bool(others) and max(others) > 0.2,
        "note": args.load_note,
    }
    if len(variants) > 1:
        doc["side_by_side"] = side_by_side(doc["results"], list(variants))
    return doc


def side_by_side(results: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """{input: {model: {variant: images/s, variant_speedup: paired ratio}}}, and a text table on stderr.

    The speed-up of a variant over the first (reference) is the median over
    rounds of reference seconds / variant seconds *within the same round*:
    neighbouring timed blocks saw about the same load, so the pairing cancels
    the slow drift that dominates medians of each variant taken separately.
    """
    ref = names[0]
    table: dict[str, Any] = {}
    lines = [f"{'input':12} {'model':17} " + " ".join(f"{n:>20}" for n in names)]
    for inp, models in results.items():
        for key, cells in models.items():
            ref_t = cells.get(ref, {}).get("train_seconds", [])
            row: dict[str, Any] = {}
            for n in names:
                t = cells.get(n, {}).get("train_seconds", [])
                row[n] = cells.get(n, {}).get("images_per_s")
                pairs = [a / b for a, b in zip(ref_t, t, strict=False) if b]
                row[f"{n}_speedup"] = round(statistics.median(pairs), 3) if pairs else None
                ref_s, var_s = cells.get(ref, {}).get("score_seconds", []), cells.get(n, {}).get("score_seconds", [])
                if ref_s and var_s:  # scoring, paired the same way
                    score_pairs = [a / b for a, b in zip(ref_s, var_s, strict=False) if b]
                    row[f"{n}_score_ms_per_sample"] = cells[n].get("score_ms_per_sample")
                    row[f"{n}_score_speedup"] = round(statistics.median(score_pairs), 3)
            table.setdefault(inp, {})[key] = row
            cols = [
                f"{row[n]:>11} x{row[f'{n}_speedup']:<7}" if row[n] and row[f"{n}_speedup"] else f"{'-':>20}"
                for n in names
            ]
            lines.append(f"{inp:12} {key:17} " + " ".join(cols))
    print("samples/s (median) and paired speed-up over " + ref + "\n" + "\n".join(lines), file=sys.stderr)
    return table


# -- inputs and per-process comparison ------------------------------------------------------------------


def load_inputs(args: argparse.Namespace, n: int) -> dict[str, tuple[Any, np.ndarray]]:
    """Real training-side samples per input; from --compare-processes' cache when given (saves a 20 s parse)."""
    from _common import real_inputs

    from ganad.data.types import InputSpec

    if args.inputs_file:
        with np.load(args.inputs_file) as z:
            return {
                name: (InputSpec(str(z[f"{name}.kind"]), tuple(int(v) for v in z[f"{name}.shape"])), z[f"{name}.x"][:n])
                for name in args.inputs
            }
    return real_inputs(args.data_dir, n, split="train", which=tuple(args.inputs))


def shared_args(argv: list[str]) -> list[str]:
    """The command line every variant process gets: ``argv`` minus the options of the comparison itself."""
    takes_one, takes_many = {"--out", "--rounds"}, {"--compare-processes"}
    shared: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        flag = a.split("=", 1)[0]
        i += 1
        if flag in takes_one:
            i += 0 if "=" in a else 1
            continue
        if flag in takes_many:
            while "=" not in a and i < len(argv) and not argv[i].startswith("--"):
                i += 1
            continue
        shared.append(a)
    return shared


def compare_processes(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Run each NAME=ARGS configuration in its own process, ``--rounds`` times in turn."""
    from _common import machine, real_inputs

    configs = {}
    for spec in args.compare_processes:
        name, _, extra = spec.partition("=")
        configs[name] = shlex.split(extra)
    shared = shared_args(argv)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
    n = max(BATCH["image"] * args.conv_steps, BATCH["tabular"] * args.mlp_steps, args.score_n, args.anogan_score_n)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "inputs.npz"
        arrays: dict[str, np.ndarray] = {}
        for name, (spec, x) in real_inputs(args.data_dir, n, split="train", which=tuple(args.inputs)).items():
            arrays.update({f"{name}.kind": np.array(spec.kind), f"{name}.shape": np.array(spec.shape), f"{name}.x": x})
        np.savez(cache, **arrays)
        for rnd in range(args.rounds or 1):
            for name, extra in configs.items():
                cmd = [sys.executable, str(Path(__file__).resolve()), *shared, *extra, "--inputs-file", str(cache)]
                cmd += ["--repeats", "1"] if args.rounds else []
                print(f"round {rnd + 1} {name}: {shlex.join(cmd[1:])}", file=sys.stderr, flush=True)
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    runs[name].append({"error": proc.stderr.strip()[-2000:]})
                    print(f"  {name} failed: {proc.stderr.strip()[-500:]}", file=sys.stderr)
                    continue
                runs[name].append(json.loads(proc.stdout))
    merged: dict[str, Any] = {}
    for name, docs in runs.items():
        for d in docs:
            for inp, models in d.get("results", {}).items():
                for key, r in models.items():
                    cell = merged.setdefault(inp, {}).setdefault(key, {}).setdefault(name, {"images_per_s_runs": []})
                    if "images_per_s" in r:
                        cell["images_per_s_runs"].append(r["images_per_s"])
                        cell.setdefault("train_seconds", []).append(statistics.median(r["train_seconds"]))
                        cell.setdefault("others_cores", []).extend(r["others_cores"])
                    else:
                        cell["error"] = r.get("error")
    for models in merged.values():
        for cells in models.values():
            for cell in cells.values():
                if cell["images_per_s_runs"]:
                    cell["images_per_s"] = round(statistics.median(cell["images_per_s_runs"]), 1)
    return {
        "benchmark": "throughput_compare_processes",
        "configs": {n: shlex.join(e) for n, e in configs.items()},
        "machine": machine(),
        "results": merged,
        "side_by_side": side_by_side(merged, list(configs)),
        "runs": runs,
    }


def variant_from_args(args: argparse.Namespace) -> Variant:
    return Variant(
        threads=args.threads,
        channels_last=args.channels_last,
        compile=args.compile,
        mkldnn=not args.no_mkldnn,
        flush_denormal=args.flush_denormal,
        fused_adam=args.fused_adam,
        hot_path=not args.before_edits,
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.compare_processes:
        doc = compare_processes(args, argv)
    elif args.compare:
        doc = run(args, {name: VARIANTS[name] for name in (args.variants or VARIANTS)})
    else:
        doc = run(args, {"this": variant_from_args(args)})
    text = json.dumps(doc, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
