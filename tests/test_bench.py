"""Benchmark grids, the results store and the report, on the built-in digits (real data, seconds per trial)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from ganad.bench import expand, load_grid, run_grid, store
from ganad.bench.report import MARKER, write_report
from ganad.bench.runner import cells
from ganad.cli import main
from ganad.errors import ConfigError, RunExistsError
from ganad.models import MODELS
from ganad.run import train

GRID = """
name: digits-test
description: two detectors on digits, one class anomalous
metrics: [auroc, auprc]
base: {{dataset: digits, protocol: one-class-anomalous, image_size: 16, maps: 0}}
grid:
  model: {models}
  class: [0]
  seed: {seeds}
  params.score_method: [fm, cross-e]
budgets:
  quick: {{epochs: {epochs}, max_train: 300}}
  other: {{epochs: 2, max_train: 300}}
"""


def write_grid(tmp_path: Path, models="[ganomaly, egbad]", seeds="[0, 1]", epochs=1, name="grid.yaml") -> Path:
    p = tmp_path / name
    p.write_text(GRID.format(models=models, seeds=seeds, epochs=epochs))
    return p


def ok_lines(root: Path) -> list[dict]:
    return [json.loads(x) for x in (root / store.RESULTS).read_text().splitlines() if '"status": "ok"' in x]


def bench(*args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ganad.cli", "benchmark", *args, "-q"],
        capture_output=True,
        text=True,
        check=check,
        env=env,
    )


def test_grid_expands_hyperparameter_lists_only_for_models_that_have_them(tmp_path):
    spec = load_grid(write_grid(tmp_path))
    trials = expand(spec, "quick")
    # ganomaly has no score_method: it runs once per seed; egbad runs both scores
    assert sorted(t.config.model for t in trials) == ["egbad"] * 4 + ["ganomaly"] * 2
    assert {t.config.params.get("score_method") for t in trials if t.config.model == "egbad"} == {"fm", "cross-e"}
    assert len({t.id for t in trials}) == 6
    assert [t.config.seed for t in trials][:3] == [0, 0, 0], "seeds outermost: early results cover every cell"
    other = {t.id for t in expand(spec, "other")}
    assert not other & {t.id for t in trials}, "another budget is another trial"
    assert {t.id for t in expand(load_grid(write_grid(tmp_path)), "quick")} == {t.id for t in trials}, "stable ids"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("grid: {model: [ganomaly]}\nbudgets: {quick: {epoch: 1}}\n", "epoch"),
        ("grid: {model: [nosuch]}\nbudgets: {quick: {epochs: 1}}\n", "nosuch"),
        ("grid: {model: [ganomaly], params.w_con: [fast]}\nbudgets: {quick: {}}\n", "w_con"),
        ("grid: {model: []}\nbudgets: {quick: {}}\n", "grid.model"),
        ("grid: {model: [ganomaly]}\n", "budgets"),
        ("grids: {}\n", "grids"),
        ("published: 3\ngrid: {model: [ganomaly]}\nbudgets: {quick: {}}\n", "'published'"),
        ("published: [egbad-kdd99, 3]\ngrid: {model: [ganomaly]}\nbudgets: {quick: {}}\n", "'published'"),
        ("published: []\ngrid: {model: [ganomaly]}\nbudgets: {quick: {}}\n", "'published'"),
    ],
)
def test_bad_grid_names_the_file_and_key(tmp_path, text, needle):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_grid(p)
    assert str(p) in str(e.value) and needle in str(e.value)


def test_grid_runs_then_skips_finished_trials_and_summarises_over_seeds(tmp_path):
    spec = load_grid(write_grid(tmp_path, models="[ganomaly]", seeds="[0, 1]"))
    root = tmp_path / "res"
    first = run_grid(spec, "quick", root, progress=False)
    assert first["ran"] == 2 and first["failed"] == 0
    again = run_grid(spec, "quick", root, progress=False)
    assert again["ran"] == 0 and again["done"] == 2
    recs = ok_lines(root)
    assert len(recs) == 2, "a finished trial is never run or recorded twice"
    for r in recs:
        assert (root / r["folder"] / "metrics.json").is_file(), "each trial is an ordinary run folder"
        assert (root / r["folder"] / "model.safetensors").is_file() and (root / r["folder"] / "scores.csv").is_file()
        assert not (root / r["folder"] / "checkpoint.safetensors").exists(), "a finished trial's resume state goes"
        assert {"auroc", "auprc", "f1"} <= set(r["metrics"]) and r["train_seconds"] > 0
        assert r["environment"]["torch"] and r["selection"]["select_on"] and r["params"]["w_con"] == 50.0
    rows = store.summarise(store.read(root), ["auroc"])
    assert len(rows) == 1 and rows[0]["seeds"] == 2
    vals = [r["metrics"]["auroc"] for r in recs]
    assert rows[0]["auroc_mean"] == pytest.approx(np.mean(vals))
    assert rows[0]["auroc_std"] == pytest.approx(np.std(vals, ddof=1))
    csv_text = store.format_table(rows, ["auroc"], "csv")
    assert csv_text.splitlines()[0].startswith("grid,budget,model") and len(csv_text.splitlines()) == 2
    assert json.loads(store.format_table(rows, ["auroc"], "json"))[0]["seeds"] == 2
    assert "±" in store.format_table(rows, ["auroc"], "markdown")
    # times of two machines are shown apart, never averaged into a number that describes neither
    moved = [dict(recs[0]), {**recs[1], "environment": {**recs[1]["environment"], "cpu": "Other CPU"}}]
    for r in moved:
        r["status"] = "ok"
    two = store.summarise(moved, ["auroc"])[0]
    assert two["train_seconds_mean"] is None and len(two["train_seconds_by_machine"]) == 2
    assert two["auroc_mean"] == pytest.approx(np.mean(vals)), "metrics still average over machines"
    cell = store.format_table([two], ["auroc"], "markdown").splitlines()[-1]
    assert "(Other CPU x" in cell and f"{recs[0]['train_seconds']:.1f}" in cell


def test_killed_grid_resumes_the_interrupted_trial_to_the_same_weights(tmp_path, interrupt_after_epochs):
    grid = write_grid(tmp_path, models="[ganomaly]", seeds="[0, 1]", epochs=4)
    root = tmp_path / "res"
    trial = expand(load_grid(grid), "quick")[0]
    interrupt_after_epochs(["benchmark", str(grid), "--out", str(root), "-q"], trial.folder(root) / "log.jsonl")
    assert not (trial.folder(root) / "metrics.json").exists(), "the trial finished before it could be killed"
    out = json.loads(bench(str(grid), "--out", str(root)).stdout.splitlines()[-1])
    assert out["ran"] == 2 and out["failed"] == 0
    assert sorted(r["trial"] for r in ok_lines(root)) == sorted(t.id for t in expand(load_grid(grid), "quick"))
    train(trial.config, tmp_path / "uninterrupted", progress=False)
    a = load_file(tmp_path / "uninterrupted" / "model.safetensors")
    b = load_file(trial.folder(root) / "model.safetensors")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return not stat.is_file() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_sigterm_to_a_parallel_grid_stops_its_workers_and_the_grid_resumes(tmp_path, interrupt_after_epochs):
    """``kill PID`` (a job scheduler's time limit) reaches only the parent; its workers must not run on."""
    grid = write_grid(tmp_path, models="[ganomaly]", seeds="[0, 1]", epochs=6)
    root = tmp_path / "res"
    trials = expand(load_grid(grid), "quick")
    args = ["benchmark", str(grid), "--out", str(root), "--workers", "2", "-q"]
    proc, workers = interrupt_after_epochs(args, trials[0].folder(root) / "log.jsonl", epochs=1, sig=signal.SIGTERM)
    assert proc.returncode == 128 + signal.SIGTERM and workers
    deadline = time.time() + 30
    while time.time() < deadline and not all(_gone(p) for p in workers):
        time.sleep(0.1)
    assert all(_gone(p) for p in workers), "no worker outlives the grid it belonged to"
    assert not (trials[0].folder(root) / "metrics.json").exists(), "the trial finished before it was stopped"
    resumed = bench(str(grid), "--out", str(root), "--workers", "2")
    out = json.loads(resumed.stdout.splitlines()[-1])
    assert out["ran"] == 2 and out["failed"] == 0
    assert sorted(r["trial"] for r in ok_lines(root)) == sorted(t.id for t in trials)
    # -q hides the bars, not the log: a line per finished trial with the grid's metric and an ETA, then a summary
    ticks = [line for line in resumed.stderr.splitlines() if line.startswith("[")]
    assert len(ticks) == 2 and {t.id for t in trials} == {line.split()[1].rstrip(":") for line in ticks}
    assert re.search(r"^\[1/2\] \S+: ran, auroc \d\.\d{4}, \d+ s; about .+ left$", ticks[0]), ticks[0]
    assert ticks[1].startswith("[2/2]") and "grid done in" in ticks[1]
    assert "2 trials: 2 ran now, 0 were already done (skipped), 0 failed" in resumed.stderr


def test_two_processes_on_one_folder_never_run_a_trial_twice(tmp_path):
    grid = write_grid(tmp_path, models="[ganomaly]", seeds="[0, 1, 2, 3]", epochs=2)
    root = tmp_path / "res"
    cmd = [sys.executable, "-m", "ganad.cli", "benchmark", str(grid), "--out", str(root), "-q"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    recs = ok_lines(root)
    assert len(recs) == 4 and len({r["trial"] for r in recs}) == 4, "each trial ran and was recorded once"
    counts = [json.loads(o[0].splitlines()[-1]) for o in outs]
    assert sum(c["ran"] for c in counts) == 4


def test_diverging_trial_is_marked_failed_skipped_then_retried(tmp_path):
    p = tmp_path / "nan.yaml"
    p.write_text(
        "name: nan\nbase: {dataset: digits, image_size: 16, maps: 0, params: {lr: 1.0e12}}\n"
        "grid: {model: [ganomaly], seed: [0]}\nbudgets: {quick: {epochs: 2, max_train: 200}}\n"
    )
    root = tmp_path / "res"
    first = json.loads(bench(str(p), "--out", str(root), check=False).stdout.splitlines()[-1])
    assert first["failed"] == 1
    recs = store.read(root)
    assert recs[0]["status"] == "failed" and "nan" in recs[0]["error"].lower()
    assert store.summarise(recs, ["auroc"]) == [], "a failed trial contributes no numbers"
    again = json.loads(bench(str(p), "--out", str(root), check=False).stdout.splitlines()[-1])
    assert again["failed"] == 1 and again["ran"] == 0, "failed trials are skipped until asked"
    bench(str(p), "--out", str(root), "--retry-failed", check=False)
    lines = (root / store.RESULTS).read_text().splitlines()
    assert len(lines) == 2, "the retry appended a new record"


def test_report_is_self_contained_and_never_overwrites_a_users_folder(tmp_path):
    spec = load_grid(write_grid(tmp_path, models="[ganomaly, egbad]", seeds="[0, 1]"))
    root = tmp_path / "res"
    run_grid(spec, "quick", root, progress=False)
    page = write_report(root)
    text = page.read_text()
    assert MARKER in text and "data:image/png;base64," in text
    assert "ganomaly" in text and "egbad (score_method=cross-e)" in text and "±" in text
    figs = sorted(p.name.rsplit("-", 1)[-1] for p in (page.parent / "figures").iterdir())
    assert figs == ["bars.png", "curves.png", "hist.png", "images.png", "losses.png"]
    md = (page.parent / "report.md").read_text()
    assert "| model |" in md and "figures/" in md
    write_report(root)  # ours: regenerated in place
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    with pytest.raises(RunExistsError):
        write_report(root, mine)
    assert (mine / "notes.txt").read_text() == "my notes"


def test_results_cli_formats(tmp_path):
    spec = load_grid(write_grid(tmp_path, models="[ganomaly]", seeds="[0]"))
    root = tmp_path / "res"
    run_grid(spec, "quick", root, progress=False)
    run = [sys.executable, "-m", "ganad.cli", "results", str(root)]
    csv_out = subprocess.run([*run, "--format", "csv", "--metrics", "auroc"], capture_output=True, text=True).stdout
    assert csv_out.splitlines()[0].split(",")[:3] == ["grid", "budget", "model"]
    md = subprocess.run(run, capture_output=True, text=True).stdout
    assert md.startswith("### ") and "| detector | 0 | mean | seeds | train s | machines |" in md, md
    long = subprocess.run([*run, "--layout", "long"], capture_output=True, text=True).stdout
    assert long.startswith("| grid |")
    err = subprocess.run([*run[:-1], str(tmp_path / "none")], capture_output=True, text=True)
    assert err.returncode == 2 and "results.jsonl" in err.stderr


SHIPPED = sorted(
    p for p in (Path(__file__).resolve().parents[1] / "configs").glob("*.yaml") if p.name != "quickstart.yaml"
)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_grids_expand_at_every_budget_with_a_small_quick_one(path):
    spec = load_grid(path)
    assert {"quick", "cpu", "full"} <= set(spec.budgets)  # a grid may keep more (e.g. Deep SVDD's cpu-class)
    # trials that train; the one-pass baselines (seconds each) do not count towards a quick budget's size
    sizes = {b: sum(not MODELS[t.config.model].fits_in_one_pass for t in expand(spec, b)) for b in spec.budgets}
    assert sizes["quick"] <= 16 < sizes["cpu"] or sizes["cpu"] <= 16, sizes
    assert all(t.config.epochs <= 3 for t in expand(spec, "quick"))


@pytest.mark.parametrize("how", ["flag", "env"])
def test_benchmark_threads_are_what_each_trial_ran_and_recorded_with(tmp_path, how):
    """--threads (or $GANAD_NUM_THREADS) sets each trial's torch threads, one worker or several."""
    import os

    grid = write_grid(tmp_path, models="[ganomaly]", seeds="[0, 1]")
    for workers in ("1", "2"):
        root = tmp_path / f"res{workers}"
        args = [str(grid), "--out", str(root), "--workers", workers]
        env = {k: v for k, v in os.environ.items() if k != "GANAD_NUM_THREADS"}
        if how == "flag":
            args += ["--threads", "3"]
        else:
            env["GANAD_NUM_THREADS"] = "3"
        bench(*args, env=env)
        recs = ok_lines(root)
        assert len(recs) == 2 and {r["environment"]["torch_threads"] for r in recs} == {3}, workers
    bad = bench(str(grid), "--out", str(tmp_path / "bad"), "--threads", "0", check=False)
    assert bad.returncode == 2 and "--threads must be a positive whole number" in bad.stderr


def test_only_selects_part_of_a_grid(tmp_path):
    from ganad.bench.runner import select

    trials = expand(load_grid(write_grid(tmp_path, seeds="[0, 1, 2]")), "quick")
    picked = select(trials, {"seed": ["1"], "model": ["egbad"], "params.score_method": ["fm"]})
    assert [(t.config.model, t.config.seed, t.config.params["score_method"]) for t in picked] == [("egbad", 1, "fm")]
    with pytest.raises(ConfigError, match="nope"):
        select(trials, {"nope": ["1"]})


def test_ray_backend_sends_trials_to_a_local_cluster_and_fills_the_same_store(tmp_path):
    import ray

    spec = load_grid(write_grid(tmp_path, models="[ganomaly]", seeds="[0, 1]"))
    root = tmp_path / "res"
    run_grid(spec, "quick", root, progress=False, limit=1)  # one trial locally
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        counts = run_grid(spec, "quick", root, backend="ray", progress=False)
    finally:
        ray.shutdown()
    assert counts["done"] == 1 and counts["ran"] == 1
    recs = ok_lines(root)
    assert sorted(r["seed"] for r in recs) == [0, 1]


def test_a_committed_store_without_trial_folders_is_continued_not_rerun(tmp_path):
    """results.jsonl is committed without trials/ (weights are large): the next machine skips what it holds."""
    import shutil

    from ganad.bench.runner import plan, plan_summary

    spec = load_grid(write_grid(tmp_path, models="[ganomaly]", seeds="[0, 1]"))
    root = tmp_path / "res"
    assert run_grid(spec, "quick", root, progress=False, limit=1)["ran"] == 1
    shutil.rmtree(root / "trials")
    rows = plan(spec, "quick", root)
    assert [r["state"] for r in rows] == ["done", "new"]
    # --dry-run (issue 19): the settings that vary, and a time estimated from the finished trial
    assert [r["varying"] for r in rows] == [{"seed": 0}, {"seed": 1}]
    assert rows[1]["estimate_s"] == round(ok_lines(root)[0]["wall_seconds"], 1) > 0
    assert plan_summary(rows, 2).startswith("2 trials: 1 done (skipped), 1 to run; about ")
    counts = run_grid(spec, "quick", root, progress=False)
    assert counts["done"] == 1 and counts["ran"] == 1
    assert sorted(r["seed"] for r in ok_lines(root)) == [0, 1], "the recorded trial was not run again"


def test_grid_killed_between_trials_keeps_the_finished_one_and_duplicates_none(tmp_path):
    """SIGKILL `ganad benchmark` after trial 1 is recorded and while trial 2 trains, then restart:
    trial 1 is neither re-run nor re-recorded, trial 2 resumes, each has exactly one ok line."""
    grid = tmp_path / "small.yaml"
    grid.write_text(
        "name: kill-test\nbase: {dataset: digits, image_size: 16, batch_size: 32, maps: 0}\n"
        "grid: {model: [ganomaly], class: [0], seed: [0, 1]}\n"
        "budgets: {quick: {epochs: 3, max_train: 96, max_test: 100}}\n"
    )
    root = tmp_path / "res"
    first, second = expand(load_grid(grid), "quick")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ganad.cli", "benchmark", str(grid), "--out", str(root), "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = second.folder(root) / "log.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        recorded = (root / store.RESULTS).is_file() and any(r["trial"] == first.id for r in ok_lines(root))
        if recorded and log.is_file() and len(log.read_text().splitlines()) >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (second.folder(root) / "metrics.json").exists(), "trial 2 finished before it could be killed"
    done_line = [x for x in (root / store.RESULTS).read_text().splitlines() if first.id in x]
    finished = {p.name: p.stat().st_mtime_ns for p in first.folder(root).iterdir()}
    out = json.loads(bench(str(grid), "--out", str(root)).stdout.splitlines()[-1])
    assert out["done"] == 1 and out["ran"] == 1 and out["failed"] == 0
    recs = ok_lines(root)
    assert sorted(r["trial"] for r in recs) == sorted([first.id, second.id]), "one ok line per trial"
    assert [x for x in (root / store.RESULTS).read_text().splitlines() if first.id in x] == done_line
    assert {p.name: p.stat().st_mtime_ns for p in first.folder(root).iterdir()} == finished, "trial 1 untouched"
    log2 = [json.loads(x) for x in log.read_text().splitlines()]
    assert [r["epoch"] for r in log2] == [1, 2, 3], "trial 2 resumed and finished its epochs"


def test_a_lost_store_line_is_recorded_once_and_never_under_another_process_lock(tmp_path):
    """A crash between a trial's metrics.json and its store line: the next run records it, unless it is locked."""
    from filelock import FileLock

    spec = load_grid(write_grid(tmp_path, models="[ganomaly]", seeds="[0, 1]"))
    root = tmp_path / "res"
    assert run_grid(spec, "quick", root, progress=False)["ran"] == 2
    (root / store.RESULTS).unlink()  # both lines lost
    held = expand(spec, "quick")[0]
    other = FileLock(str(root / "locks" / f"{held.id}.lock"))
    other.acquire(timeout=0)  # another process is working on this trial: it is its job to record it
    try:
        counts = run_grid(spec, "quick", root, progress=False)
    finally:
        other.release()
    assert counts["done"] == 2 and counts["ran"] == 0, "finished trials are never run again"
    assert [r["trial"] for r in ok_lines(root)] == [expand(spec, "quick")[1].id]
    run_grid(spec, "quick", root, progress=False)
    run_grid(spec, "quick", root, progress=False)
    assert sorted(r["seed"] for r in ok_lines(root)) == [0, 1], "each lost line recorded exactly once"


COMMITTED = sorted((Path(__file__).resolve().parents[1] / "docs" / "results").glob("*/results.jsonl"))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.parent.name)
def test_committed_results_are_still_trials_of_the_shipped_grids(path):
    """Editing a shipped config (e.g. adding row_scaling) must not orphan committed results (they would rerun)."""
    grids = {load_grid(p).name: p for p in SHIPPED}
    recs = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    by_budget: dict[tuple[str, str], set[str]] = {}
    for r in recs:
        by_budget.setdefault((r["grid"], r["budget"]), set()).add(r["trial"])
    for (grid, budget), ids in by_budget.items():
        expected = {t.id for t in expand(load_grid(grids[grid]), budget)}
        assert ids <= expected, f"{sorted(ids - expected)[:3]} are no longer trials of {grids[grid].name}"


def test_row_scaling_variants_are_kept_apart_in_tables_and_reports(tmp_path):
    spec = load_grid(write_grid(tmp_path, models="[ganomaly]", seeds="[0]"))
    root = tmp_path / "res"
    run_grid(spec, "quick", root, progress=False)
    (rec,) = ok_lines(root)
    raw = {**rec, "trial": rec["trial"] + "-raw", "config": {**rec["config"], "row_scaling": "none"}}
    raw["metrics"] = {**rec["metrics"], "auroc": 0.25}
    store.append(root, raw)
    rows = store.summarise(store.read(root), ["auroc"])
    assert sorted(r["variant"] for r in rows) == ["", "row_scaling=none"]
    assert {r["auroc_mean"] for r in rows} == {rec["metrics"]["auroc"], 0.25}, "the two variants were averaged"
    html = write_report(root).read_text()
    assert "row_scaling=none" in html


def test_a_grid_on_an_mvtec_category_stores_pixel_metrics_and_each_defects_auroc(tmp_path, mvtec_tree, capsys):
    """Issue 20: the pixel metrics and the per-defect AUROC reach the results store (and so its tables)."""
    root = mvtec_tree()
    grid = tmp_path / "mv.yaml"
    grid.write_text(
        f"name: mv\nbase: {{dataset: mvtec, data_dir: {root}, category: widget, maps: 0}}\n"
        "grid: {model: [pca], seed: [0]}\nbudgets: {quick: {epochs: 1}}\n"
    )
    assert run_grid(load_grid(grid), "quick", tmp_path / "res", progress=False)["ran"] == 1
    [rec] = ok_lines(tmp_path / "res")
    assert {"pixel_auroc", "aupro"} <= set(rec["metrics"]) and set(rec["per_defect_auroc"]) == {"hole", "scratch"}
    rows = store.summarise(store.read(tmp_path / "res"), ["auroc", "pixel_auroc", "aupro"])
    assert rows[0]["pixel_auroc_mean"] > 0.9
    # each defect's AUROC is a column of `ganad results` and of the report, read against chance 0.5
    [row] = store.summarise(store.read(tmp_path / "res"))
    assert row["auroc:hole_mean"] == rec["per_defect_auroc"]["hole"]
    assert store.chance("auroc:scratch", [row]) == 0.5
    main(["results", str(tmp_path / "res"), "--layout", "long"])
    text = capsys.readouterr().out
    assert "auroc:hole" in text and "auroc:scratch" in text
    main(["results", str(tmp_path / "res"), "--metric", "auroc:scratch"])
    pivot = capsys.readouterr().out
    assert f"{rec['per_defect_auroc']['scratch']:.3f}" in pivot and "| chance |" in pivot
    md = write_report(tmp_path / "res").with_suffix(".md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| model | trials"))
    assert "auroc:hole" in header and "auroc:scratch" in header


def test_a_cells_seeds_train_stacked_each_an_ordinary_trial(tmp_path, data_dir):
    """Issue 21: a tabular cell's new seeds (here GANomaly and EGBAD on KDD rows, 3 seeds) train as one
    stacked model in one worker; each seed is still its own trial folder, model, log and results line,
    and `--no-stack-seeds` runs the same trials alone. Image cells (conv nets) are never grouped."""
    grid = tmp_path / "kdd.yaml"
    grid.write_text(
        "name: kdd-stack\nbase: {dataset: kdd99, protocol: kdd, max_train: 1500, max_val: 500, max_test: 1000}\n"
        "grid: {model: [ganomaly, egbad], seed: [0, 1, 2]}\nbudgets: {quick: {epochs: 1}}\n"
    )
    spec = load_grid(grid)
    trials = expand(spec, "quick")
    groups = cells(trials, {t.id: "new" for t in trials})
    assert sorted(len(g) for g in groups) == [3, 3]
    assert len(cells(trials, {t.id: "new" for t in trials}, stack_seeds=False)) == 6
    started = {trials[0].id: "partial", **{t.id: "new" for t in trials[1:]}}
    assert sorted(len(g) for g in cells(trials, started)) == [1, 2, 3]  # a started trial resumes alone

    counts = run_grid(spec, "quick", tmp_path / "stacked", progress=False)
    assert counts["ran"] == 6 and counts["failed"] == 0
    recs = ok_lines(tmp_path / "stacked")
    assert sorted((r["model"], r["seed"]) for r in recs) == sorted(
        (m, s) for m in ("egbad", "ganomaly") for s in range(3)
    )
    assert all(r["stacked_seeds"] == 3 for r in recs)
    for r in recs:
        folder = tmp_path / "stacked" / r["folder"]
        assert (folder / "metrics.json").is_file() and (folder / "model.safetensors").is_file()
        assert len((folder / "log.jsonl").read_text().splitlines()) == 1
        assert r["selection"]["select_on"] == "val"
    by_trial = {r["trial"]: r["metrics"]["auroc"] for r in recs}
    assert len({by_trial[r["trial"]] for r in recs if r["model"] == "ganomaly"}) == 3  # three runs, not one thrice

    only = {"model": ["ganomaly"]}
    solo = run_grid(spec, "quick", tmp_path / "solo", progress=False, stack_seeds=False, only=only)
    assert solo["ran"] == 3 and not any("stacked_seeds" in r for r in ok_lines(tmp_path / "solo"))
    alone = {r["trial"]: r["metrics"]["auroc"] for r in ok_lines(tmp_path / "solo")}
    assert alone.keys() == {r["trial"] for r in recs if r["model"] == "ganomaly"}
    for trial, auroc in alone.items():  # the same runs within seed noise (dropout masks are the stack's)
        assert abs(by_trial[trial] - auroc) < 0.1

    images = expand(load_grid(write_grid(tmp_path, models="[ganomaly]", seeds="[0, 1, 2]")), "quick")
    assert all(len(g) == 1 for g in cells(images, {t.id: "new" for t in images}))


SURVEY = Path(__file__).resolve().parents[1] / "docs" / "results" / "survey-mnist-cpu-10k"


def test_a_mean_over_classes_carries_the_spread_of_each_seeds_own_mean(capsys):
    """The headline number of a table is a mean over classes; its ± is the std over seeds of each seed's own
    mean over classes (seeds with every class only), computed here by hand from the committed survey store."""
    import statistics

    recs = [r for r in store.read(SURVEY) if r.get("status") == "ok"]
    mine = [r for r in recs if r["model"] == "ganomaly" and r["dataset"] == "mnist"]
    classes = sorted({r["cls"] for r in mine})
    seeds = [s for s in sorted({r["seed"] for r in mine}) if {r["cls"] for r in mine if r["seed"] == s} == set(classes)]
    assert len(classes) == 10 and len(seeds) >= 2, "the committed survey store has two complete seeds"
    per_seed = [statistics.mean(r["metrics"]["auprc"] for r in mine if r["seed"] == s) for s in seeds]
    rows = [r for r in store.summarise(recs, ["auprc"]) if r["model"] == "ganomaly" and r["dataset"] == "mnist"]
    mean, std = store.class_mean(rows, "auprc")
    assert mean == pytest.approx(statistics.mean(r["auprc_mean"] for r in rows))
    assert std == pytest.approx(statistics.stdev(per_seed)) and std > 0
    main(["results", str(SURVEY), "--layout", "means", "--metric", "auprc", "--only", "model=ganomaly"])
    assert store.fmt_pm(mean, std) in capsys.readouterr().out
    # one seed only: no spread to show, not "± 0.000"
    one = store.summarise([r for r in recs if r["seed"] == seeds[0]], ["auprc"])
    ganomaly_mnist = [r for r in one if r["model"] == "ganomaly" and r["dataset"] == "mnist"]
    assert store.class_mean(ganomaly_mnist, "auprc")[1] is None


def test_diagnostics_read_as_metrics_when_asked_for(capsys):
    """``--metric rho:ink`` tabulates the score's Spearman rho with ink from each record's diagnostics, so a
    reading's "EGBAD's score is mostly ink" has a command behind it; default tables leave diagnostics out."""
    recs = [r for r in store.read(SURVEY) if r.get("status") == "ok" and r["model"] == "egbad"]
    rec = recs[0]
    assert store._metric(rec, "rho:ink") == rec["diagnostics"]["correlation"]["ink"]
    assert store._metric(rec, "spread") == rec["diagnostics"]["spread"]["ratio"]
    assert "rho:ink_mean" not in store.summarise(recs)[0], "diagnostics are not metrics by default"
    main(["results", str(SURVEY), "--metric", "rho:ink", "--only", "model=egbad", "--only", "dataset=mnist"])
    out = capsys.readouterr().out
    assert "rho:ink, mean ± std over seeds" in out and "| chance |" not in out
    assert main(["results", str(SURVEY), "--metric", "rho:inc"]) == 2  # a wrong name lists what there is
    assert re.search(r"--metric rho:inc: not recorded .*; diagnostics: .*rho:ink", capsys.readouterr().err)
