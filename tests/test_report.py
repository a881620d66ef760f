"""The report from a real (tiny) grid on the built-in digits: complete, committed without trials/, partial.

A results folder is committed with ``results.jsonl``, ``grids/`` and its
``report/`` but without ``trials/`` (the weights are too big), so the report
and ``ganad results`` must work from the store alone and say what is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ganad.bench import load_grid, published, run_grid, store
from ganad.bench.report import MARKER, write_report
from ganad.errors import RunExistsError

GRID = """
name: digits-report
description: two detectors on digits, one class anomalous
published: digits-report-test
metrics: [auroc, auprc]
base: {dataset: digits, protocol: one-class-anomalous, image_size: 16, maps: 0}
grid:
  model: [ganomaly, egbad]
  class: [0]
  seed: [0]
  params.score_method: [fm, cross-e]
budgets:
  quick: {epochs: 1, max_train: 300}
"""
FIGURES = ["bars", "curves", "hist", "images", "losses"]


def figure_kinds(report: Path) -> list[str]:
    return sorted(p.stem.rsplit("-", 1)[-1] for p in (report / "figures").glob("*.png"))


@pytest.fixture(scope="module")
def grid_root(tmp_path_factory) -> Path:
    """One real grid (3 trials: ganomaly, egbad x 2 scores), run once for the module; tests copy it."""
    base = tmp_path_factory.mktemp("grid")
    (base / "grid.yaml").write_text(GRID)
    root = base / "res"
    counts = run_grid(load_grid(base / "grid.yaml"), "quick", root, progress=False)
    assert counts["ran"] == 3 and counts["failed"] == 0
    return root


def copy_committed(root: Path, dest: Path, with_report: bool) -> Path:
    """What the lead commits under docs/results/: results.jsonl, grids/ and (maybe) report/, never trials/."""
    dest.mkdir()
    shutil.copy(root / store.RESULTS, dest / store.RESULTS)
    shutil.copytree(root / "grids", dest / "grids")
    if with_report:
        shutil.copytree(root / "report", dest / "report")
    return dest


def test_report_works_from_results_jsonl_alone_and_says_which_figures_need_trials(grid_root, tmp_path):
    full = write_report(grid_root)
    assert figure_kinds(full.parent) == FIGURES
    assert "not in this results folder" not in full.read_text()

    bare = copy_committed(grid_root, tmp_path / "bare", with_report=False)
    page = write_report(bare)
    text = page.read_text()
    assert MARKER in text and "ganomaly" in text and "egbad (score_method=cross-e)" in text
    assert "auroc" in text and "train time (s)" in text and "scoring (ms / sample)" in text
    assert "trial folders present for 0 of 3" in text
    # tables and bars come from results.jsonl; the rest is named, with the files it needs
    assert figure_kinds(page.parent) == ["bars"]
    assert "not in this results folder" in text and "scores.csv" in text and "log.jsonl" in text
    assert "model.safetensors" in text
    md = (page.parent / "report.md").read_text()
    assert "| ganomaly |" in md and "not in this results folder" in md

    cli = [sys.executable, "-m", "ganad.cli"]
    again = subprocess.run([*cli, "report", str(bare)], capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.strip() == str(page), again.stderr
    out = subprocess.run(
        [*cli, "results", str(bare), "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert {r["model"] for r in json.loads(out.stdout)} == {"ganomaly", "egbad"}


def test_regenerating_a_committed_report_keeps_figures_drawn_when_trials_were_there(grid_root, tmp_path):
    write_report(grid_root)
    committed = copy_committed(grid_root, tmp_path / "committed", with_report=True)
    page = write_report(committed)
    text = page.read_text()
    assert figure_kinds(page.parent) == FIGURES
    assert text.count("Drawn by an earlier run of the report") == 4, "curves, hist, losses, images kept"
    assert "not in this results folder" not in text

    # a trial re-run since (a newer record) makes its old figures stale: they are not reused
    recs = [json.loads(x) for x in (committed / store.RESULTS).read_text().splitlines()]
    recs[0]["finished_at"] = "2099-01-01T00:00:00+00:00"
    (committed / store.RESULTS).write_text("".join(json.dumps(r) + "\n" for r in recs))
    text = write_report(committed).read_text()
    assert "Drawn by an earlier run of the report" not in text
    assert "not in this results folder" in text


def test_report_with_some_trial_folders_missing_draws_what_it_can(grid_root, tmp_path):
    root = tmp_path / "res"
    shutil.copytree(grid_root, root, ignore=shutil.ignore_patterns("report"))
    gone = next(r for r in store.read(root) if r["model"] == "ganomaly")
    shutil.rmtree(root / gone["folder"])
    page = write_report(root, images=False)
    text = page.read_text()
    assert figure_kinds(page.parent) == ["bars", "curves", "hist", "losses"]
    assert "2 of 3 present" in text
    assert "ganomaly" in text, "its numbers still come from results.jsonl"


def test_report_states_budget_selection_machine_and_times(grid_root, tmp_path):
    rec = store.read(grid_root)[0]
    env = rec["environment"]
    assert env["cpu_count"] >= 1 and env["torch_threads"] >= 1 and env["cpu"]
    text = write_report(grid_root, tmp_path / "rep", images=False).read_text()
    for needle in (
        "quick: epochs 1",
        "training samples ≤ 300",
        "model selection",
        "best validation AUROC",
        f"{env['torch_threads']} thread" + ("" if env["torch_threads"] == 1 else "s") + ";",  # "1 thread;"
        "usable cores",
        "train time (s)",
        "scoring (ms / sample)",
    ):
        assert needle in text, needle


def test_one_seed_has_no_std_rather_than_zero(grid_root):
    rows = store.summarise(store.read(grid_root), ["auroc"])
    assert rows and all(r["seeds"] == 1 and r["auroc_std"] is None for r in rows)
    assert "±" not in store.format_table(rows, ["auroc"], "markdown")


def test_published_value_sits_on_the_row_of_the_same_detector(grid_root, tmp_path, monkeypatch):
    entry = {
        "paper": "A test paper",
        "table": "Table 9",
        "link": "https://example.org/paper",
        "dataset": "digits",
        "protocol": "one-class-anomalous",
        "metric": "auroc",
        "selection": "last epoch",
        "values": [{"name": "EGBAD-FM", "model": "egbad", "params": {"score_method": "fm"}, "class": 0, "value": 0.5}],
    }
    monkeypatch.setitem(published.PUBLISHED, "digits-report-test", entry)
    text = write_report(grid_root, tmp_path / "rep", images=False).read_text()
    row = text[text.index("<td>EGBAD-FM</td>") :].split("</tr>")[0]
    assert "0.5000" in row and "egbad (score_method=fm)" in row
    assert "Table 9" in text and "https://example.org/paper" in text and "last epoch" in text

    entry["dataset"] = "mnist"  # a paper's numbers for another data set are not set beside ours
    text = write_report(grid_root, tmp_path / "rep", images=False).read_text()
    assert "EGBAD-FM" not in text and "no published number is transcribed for digits" in text


def test_a_grid_naming_one_published_entry_per_data_set_shows_each_section_its_own(grid_root, tmp_path, monkeypatch):
    """``published: [a, b]``: a section gets the entry for its data set, wherever it stands in the list."""

    def entry(dataset: str, value: float) -> dict:
        v = {"name": f"EGBAD-FM on {dataset}", "model": "egbad", "params": {"score_method": "fm"}, "class": 0}
        return {
            "paper": "A test paper",
            "table": "Table 1",
            "link": "https://example.org/paper",
            "dataset": dataset,
            "protocol": "one-class-anomalous",
            "metric": "auroc",
            "selection": "last epoch",
            "values": [{**v, "value": value, "std": 0.01}],
        }

    monkeypatch.setitem(published.PUBLISHED, "test-mnist", entry("mnist", 0.9))
    monkeypatch.setitem(published.PUBLISHED, "test-digits", entry("digits", 0.5))
    root = tmp_path / "res"
    shutil.copytree(grid_root, root, ignore=shutil.ignore_patterns("report"))
    grid = tmp_path / "grid.yaml"

    grid.write_text(GRID.replace("published: digits-report-test", "published: [test-mnist, test-digits]"))
    run_grid(load_grid(grid), "quick", root, progress=False)  # every trial done: only records the edited grid
    text = write_report(root, images=False).read_text()
    row = text[text.index("<td>EGBAD-FM on digits</td>") :].split("</tr>")[0]
    assert "0.5000 ± 0.0100" in row and "egbad (score_method=fm)" in row, "the std is shown beside the value"
    assert "EGBAD-FM on mnist" not in text and "0.9000" not in text

    grid.write_text(GRID.replace("published: digits-report-test", "published: [test-mnist, nosuch-key]"))
    run_grid(load_grid(grid), "quick", root, progress=False)
    text = write_report(root, images=False).read_text()
    assert "EGBAD-FM" not in text
    assert "kept here for mnist only; no published number is transcribed for digits" in text


@pytest.mark.parametrize("key", sorted(published.PUBLISHED))
def test_every_published_entry_names_its_source(key):
    entry = published.PUBLISHED[key]
    for field in published.REQUIRED:
        assert entry.get(field) not in (None, ""), f"{key}: {field}"
    assert entry["link"].startswith("https://")
    for v in entry["values"]:
        assert {"model", "value", "class"} <= set(v) and 0 <= v["value"] <= 1
    assert entry["values"] or entry.get("note"), "an entry without numbers says why"


def test_report_never_replaces_a_users_files(grid_root, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.html").write_text("<html>my own page</html>")
    with pytest.raises(RunExistsError, match="--overwrite"):
        write_report(grid_root, mine)
    assert (mine / "report.html").read_text() == "<html>my own page</html>"
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(RunExistsError):
        write_report(grid_root, afile)
    assert afile.read_text() == "x"
    # --overwrite writes a report beside a user's files, never in place of one (issue 18.7)
    with pytest.raises(RunExistsError, match=r"report\.html"):
        write_report(grid_root, mine, overwrite=True, images=False)
    assert (mine / "report.html").read_text() == "<html>my own page</html>"
    (mine / "report.html").rename(mine / "my-page.html")
    page = write_report(grid_root, mine, overwrite=True, images=False)
    assert MARKER in page.read_text() and (mine / "my-page.html").read_text() == "<html>my own page</html>"
    write_report(grid_root, mine, images=False)  # now ours: regenerated without --overwrite


def test_an_edited_grid_is_kept_once_per_version_and_the_report_reads_the_newest(grid_root, tmp_path):
    """Resuming after an edit keeps the old grid file, adds the new one once, and the report follows the edit."""
    root = tmp_path / "res"
    shutil.copytree(grid_root, root)
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID.replace("two detectors on digits", "an edited description"))
    for _ in range(3):  # every trial is done: each run only records the grid
        assert run_grid(load_grid(grid), "quick", root, progress=False)["ran"] == 0
    kept = store.grid_snapshots(root, "digits-report")
    assert [p.read_text() for p in kept] == [GRID, grid.read_text()], "the old text kept, the new one once"
    text = write_report(root, images=False).read_text()
    assert "an edited description" in text and "two detectors on digits" not in text

    grid.write_text("# a comment, and the same grid re-indented\n" + grid.read_text().replace("budgets:", "budgets:  "))
    run_grid(load_grid(grid), "quick", root, progress=False)
    assert len(store.grid_snapshots(root, "digits-report")) == 2, "a comment or layout edit is not a new version"
    grid.write_text(GRID)
    run_grid(load_grid(grid), "quick", root, progress=False)
    kept = store.grid_snapshots(root, "digits-report")
    assert len(kept) == 3 and kept[-1].read_text() == GRID, "an edit back to the first text is the newest again"
    assert "two detectors on digits" in write_report(root, images=False).read_text()

    edits = [GRID.replace("two detectors", f"edit {i}, two detectors") for i in range(3)]
    for text in edits:  # quicker than one a second: none may overwrite another
        grid.write_text(text)
        run_grid(load_grid(grid), "quick", root, progress=False)
    assert [p.read_text() for p in store.grid_snapshots(root, "digits-report")][-4:] == [GRID, *edits]


def test_report_without_the_data_set_says_so_in_one_line_and_draws_the_rest(grid_root, tmp_path, monkeypatch):
    """A store of MNIST trials reported on a machine without MNIST: no download, a short named reason."""
    root = tmp_path / "res"
    shutil.copytree(grid_root, root, ignore=shutil.ignore_patterns("report"))
    recs = [json.loads(x) for x in (root / store.RESULTS).read_text().splitlines()]
    for r in recs:
        r["dataset"] = r["config"]["dataset"] = "mnist"
    (root / store.RESULTS).write_text("".join(json.dumps(r) + "\n" for r in recs))
    monkeypatch.setenv("GANAD_DATA_DIR", str(tmp_path / "empty-data"))
    monkeypatch.setenv("GANAD_CACHE_DIR", str(tmp_path / "empty-cache"))
    text = write_report(root).read_text()
    assert figure_kinds(root / "report") == ["bars", "curves", "hist", "losses"]
    assert "the mnist files are not on this machine; pass --data-dir or set GANAD_DATA_DIR" in text
    assert "could not be downloaded" not in text and "Traceback" not in text
    assert not (tmp_path / "empty-cache").exists(), "a report never starts a download"


def test_markdown_tables_keep_their_columns_when_records_come_from_two_machines(grid_root, tmp_path):
    """Two machines in one section (old records without the CPU field) must not split the set-up cell."""
    import re

    root = tmp_path / "res"
    shutil.copytree(grid_root, root, ignore=shutil.ignore_patterns("report"))
    recs = [json.loads(x) for x in (root / store.RESULTS).read_text().splitlines()]
    recs[0]["environment"].pop("cpu", None)
    recs[0]["environment"]["platform"] = "Linux|odd-platform"
    (root / store.RESULTS).write_text("".join(json.dumps(r) + "\n" for r in recs))
    md = (write_report(root, images=False).parent / "report.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("| measured on |"))
    assert "not recorded" in line and "usable cores" in line, "both machines are named"
    assert len(re.findall(r"(?<!\\)\|", line)) == 3, line


def test_a_renamed_budget_leaves_no_orphan_figures_and_keeps_a_users_files(grid_root, tmp_path):
    root = tmp_path / "res"
    shutil.copytree(grid_root, root, ignore=shutil.ignore_patterns("report"))
    figs = write_report(root, images=False).parent / "figures"
    before = sorted(p.name for p in figs.glob("*.png"))
    assert before and all(n.startswith("digits-report-quick-") for n in before)
    (figs / "my-notes.png").write_bytes(b"not ours")
    recs = [json.loads(x) for x in (root / store.RESULTS).read_text().splitlines()]
    for r in recs:
        r["budget"] = "smoke"
    (root / store.RESULTS).write_text("".join(json.dumps(r) + "\n" for r in recs))
    write_report(root, images=False)
    after = sorted(p.name for p in figs.glob("*.png"))
    assert "my-notes.png" in after
    assert not any(n.startswith("digits-report-quick-") for n in after), after
    assert any(n.startswith("digits-report-smoke-") for n in after)
    index = json.loads((figs.parent / "figures.json").read_text())
    assert not any(n.startswith("digits-report-quick-") for n in index)


def test_rows_finished_for_fewer_classes_are_footnoted_and_not_ranked(grid_root, tmp_path):
    root = tmp_path / "res"
    shutil.copytree(grid_root, root, ignore=shutil.ignore_patterns("report"))
    recs = [json.loads(x) for x in (root / store.RESULTS).read_text().splitlines()]
    more = []
    for r in recs:
        if r["model"] == "egbad":  # both EGBAD variants also finished class 1; GANomaly did not
            c = json.loads(json.dumps(r))
            c.update(cls=1, trial=r["trial"] + "-c1")
            c["config"]["cls"] = 1
            more.append(c)
    (root / store.RESULTS).write_text("".join(json.dumps(r) + "\n" for r in recs + more))
    md = (write_report(root, images=False).parent / "report.md").read_text()
    assert "* ganomaly: finished for fewer classes than the other rows, so its mean over classes is not" in md
    row = next(x for x in md.splitlines() if x.startswith("| ganomaly |"))
    assert row.rstrip(" |").endswith("*") and "**" not in row.split("|")[-2], "its mean is marked, not bolded"


def test_times_from_two_machines_are_shown_per_machine_not_averaged(grid_root, tmp_path):
    """A grid resumed on a 3x slower host: its times are medians per named machine, never one mean of both."""
    root = tmp_path / "res"
    shutil.copytree(grid_root, root, ignore=shutil.ignore_patterns("report"))
    recs = [json.loads(x) for x in (root / store.RESULTS).read_text().splitlines()]
    assert len(recs) == 3
    fast, slow = [dict(r) for r in recs], [json.loads(json.dumps(r)) for r in recs]
    for i, r in enumerate(fast):
        r["train_seconds"], r["score_ms_per_sample"] = 10.0 + i, 0.5
    for i, r in enumerate(slow):
        r["seed"] = r["config"]["seed"] = 1
        r["trial"] += "-slow"
        r["environment"]["platform"] = "Linux-slow-host"
        r["train_seconds"], r["score_ms_per_sample"] = 40.0 + i, 2.0
    (root / store.RESULTS).write_text("".join(json.dumps(r) + "\n" for r in fast + slow))
    md = (write_report(root, images=False).parent / "report.md").read_text()
    setup = next(x for x in md.splitlines() if x.startswith("| measured on |"))
    assert "A: " in setup and "B: " in setup and "Linux-slow-host" in setup
    lines = md.splitlines()
    head = next(i for i, x in enumerate(lines) if x.startswith("### Training and scoring time per machine"))
    table = [x for x in lines[head + 2 :] if x.startswith("|")]
    assert "A: train time (s)" in table[0] and "B: scoring (ms / sample)" in table[0]
    row = next(x for x in table if x.startswith("| ganomaly |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    secs = next(r["train_seconds"] for r in fast if r["model"] == "ganomaly")
    assert cells[1:4] == ["1", f"{secs:.3g}", "0.5"], "machine A: its own trial's time"
    assert cells[4:7] == ["1", f"{secs + 30:.3g}", "2"], "machine B: its own trial's time"
    overall = next(i for i, x in enumerate(lines) if x.startswith("### All metrics"))
    assert "train time" not in lines[overall + 2], "no time column that mixes both machines"


def test_a_report_regenerated_from_an_unchanged_store_changes_no_file(grid_root, tmp_path):
    """The page is a function of the store: a committed report's diff is empty unless a result changed."""
    out = tmp_path / "rep"
    write_report(grid_root, out, images=False)
    first = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    write_report(grid_root, out, images=False)
    second = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert first.keys() == second.keys()
    changed = [str(k) for k in first if first[k] != second[k]]
    assert not changed, changed
    newest = max(r["finished_at"] for r in store.read(grid_root))
    text = (out / "report.md").read_text()
    assert f"Newest trial finished {newest[:10]}" in text and "Generated" not in text, "the store's date, no clock"
