"""The ``ganad`` command through a real subprocess, as a user runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import load_file

import ganad as ganad_api

QUICK = ["--dataset", "digits", "--class", "0", "--image-size", "16", "--batch-size", "32", "-q"]


def ganad(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "ganad.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"ganad {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def in_process(capsys, *args: str) -> tuple[int, str, str]:
    """``ganad ARGS`` through ``ganad.cli.main`` in this process: (exit status, stdout, stderr).

    The same parser and error handling as the command, without an interpreter start (seconds on
    a loaded machine) per call; tests of the entry point itself use :func:`ganad`.
    """
    from ganad.cli import main

    try:
        code = main(list(args))
    except SystemExit as e:  # argparse's --help and usage errors
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def cli(capsys, *args: str) -> tuple[str, str]:
    """:func:`in_process` for a command that must succeed: (stdout, stderr)."""
    code, out, err = in_process(capsys, *args)
    assert code == 0, f"ganad {' '.join(args)} failed ({code}):\n{err}"
    return out, err


def in_process_error(capsys, *args: str) -> str:
    """:func:`user_error` in this process: exit 2, one message, no traceback."""
    code, _, err = in_process(capsys, *args)
    assert code == 2, err
    assert "Traceback" not in err and "error:" in err
    return err


def user_error(*args: str) -> str:
    """Run a command that must fail as a user error: exit 2, one message, no traceback."""
    proc = ganad(*args, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("ganad: error: ") or "error:" in proc.stderr
    return proc.stderr


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A quick run made in this process (the entry point itself is tested with :func:`ganad`)."""
    import contextlib
    import io

    from ganad.cli import main

    out = tmp_path_factory.mktemp("runs") / "quick"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["train", *QUICK, "--epochs", "6", "--out", str(out)]) == 0
    assert "AUROC" in printed.getvalue()
    return out


def _write_pngs(folder: Path, images: np.ndarray) -> None:
    folder.mkdir(parents=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"{i}.png")


def _train_on_folders(train_dir: Path, test_dir: Path, out: Path, *extra: str) -> list[str]:
    """``ganad train`` on a user's own folders: 16x16 images, batches of 32, quiet."""
    dirs = ["--train-dir", str(train_dir), "--test-dir", str(test_dir)]
    shape = ["--image-size", "16", "--batch-size", "32"]
    return ["train", "--dataset", "folder", *dirs, *shape, *extra, "--out", str(out), "-q"]


def test_help_explains_every_command(capsys):
    top = ganad("--help").stdout  # the installed entry point itself
    for cmd in ("train", "evaluate", "score", "datasets", "models"):
        assert cmd in top
        code, out, _ = in_process(capsys, cmd, "--help")
        assert code == 0 and "usage" in out


def test_models_names_one_detectors_settings_with_allowed_values(capsys):
    code, shown, _ = in_process(capsys, "models", "egbad")
    assert code == 0 and shown.startswith("egbad") and "ganomaly" not in shown
    assert re.search(r"score_method = 'fm' +\['fm' \| 'cross-e'\] +L_D in the score", shown), shown
    assert "unknown model 'nosuch'" in in_process_error(capsys, "models", "nosuch")


def test_train_writes_a_complete_run_folder(run_dir):
    for name in (
        "config.yaml",
        "model.safetensors",
        "model.json",
        "log.jsonl",
        "metrics.json",
        "scores.csv",
        "heatmaps.png",
        "checkpoint.safetensors",
    ):
        assert (run_dir / name).is_file(), name
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(1, 7))
    assert {"adversarial", "contextual", "encoder", "d", "val_auroc"} <= set(log[0])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["selection"]["select_on"] == "val"
    assert 0.0 <= metrics["metrics"]["auroc"] <= 1.0 and metrics["train_seconds"] > 0


def test_evaluate_reproduces_the_training_metrics(run_dir, capsys):
    rec = json.loads(cli(capsys, "evaluate", str(run_dir), "--json", "-q")[0])
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert rec["metrics"]["auroc"] == pytest.approx(saved["metrics"]["auroc"], abs=1e-9)


def test_the_saved_model_predicts_what_the_runs_scores_csv_says(run_dir):
    """train's metrics and scores.csv, the saved model's threshold and ``predict``: one value, one comparison."""
    from ganad.config import load_yaml
    from ganad.run import prepare_split

    saved = json.loads((run_dir / "metrics.json").read_text())
    det = ganad_api.load(run_dir)
    assert det.threshold_ == saved["metrics"]["threshold"] and det.threshold_rule_ == saved["threshold_rule"]
    assert json.loads((run_dir / "model.json").read_text())["threshold"] == det.threshold_
    split = prepare_split(load_yaml(run_dir / "config.yaml"))
    rows = (run_dir / "scores.csv").read_text().splitlines()
    column = rows[0].split(",").index("predicted")
    assert det.predict(split.test.x).tolist() == [int(r.split(",")[column]) for r in rows[1:]]


def test_score_folder_writes_csv_and_heat_maps(run_dir, tmp_path, digit_pngs, capsys):
    folder = digit_pngs(3)
    out = tmp_path / "scores.csv"
    cli(capsys, "score", str(run_dir), str(folder), "--output", str(out), "--maps", str(tmp_path / "maps"), "-q")
    rows = out.read_text().splitlines()
    assert rows[0] == "input,score,predicted" and len(rows) == 4
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == [f"d{i}_map.png" for i in range(3)]
    err = in_process_error(capsys, "score", str(run_dir), str(folder), "--output", str(out))
    assert "already exists" in err


def test_score_maps_as_npy_are_the_detectors_float_maps(run_dir, tmp_path, digit_pngs, capsys):
    """Issue 20: ``--maps-format npy`` writes the raw map of each image, for a user's own tools, at the
    image file's resolution (as ``Detector.anomaly_map`` gives it), not the model's."""
    import ganad

    folder = digit_pngs(2)
    maps = tmp_path / "npy"
    code, _, err = in_process(
        capsys, "score", str(run_dir), str(folder), "--maps", str(maps), "--maps-format", "npy", "-q"
    )
    assert code == 0, err
    det = ganad.load(run_dir)
    from ganad.data import read_image_files

    raw = read_image_files(sorted(folder.iterdir()), channels=1)  # the files as they are
    assert raw.shape[2:] != tuple(det.preprocessor_.image_size)  # so the maps are resized back to the files'
    want = det.anomaly_map(raw)  # the API's maps: at the input's resolution
    got = [np.load(maps / f"d{i}_map.npy") for i in range(2)]
    assert got[0].dtype == np.float32 and got[0].shape == raw.shape[2:] == want[0].shape
    np.testing.assert_allclose(np.stack(got), want, rtol=1e-5, atol=1e-6)


def test_existing_run_folder_is_never_overwritten_silently(run_dir, capsys):
    before = (run_dir / "model.safetensors").read_bytes()
    err = in_process_error(capsys, "train", *QUICK, "--epochs", "1", "--out", str(run_dir))
    assert "--overwrite" in err
    assert (run_dir / "model.safetensors").read_bytes() == before


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--dataset", "nosuch"], "nosuch"),
        (["train", "--model", "nosuch", *QUICK], "unknown model 'nosuch'"),
        (["train", *QUICK, "--protocol", "nosuch"], "nosuch"),
        (["train", "--dataset", "digits", "--class", "12", "-q"], "12"),
        (["train", *QUICK, "--set", "w_cont=3"], "w_cont"),
        (["train", *QUICK, "--set", "width=64000"], "'ganomaly.width' must be between 1 and 4096, got 64000"),
        (["train", "--config", "does-not-exist.yaml"], "does-not-exist.yaml"),
        (
            ["train", "--dataset", "folder", "--train-dir", "/nonexistent/x", "--test-dir", "/nonexistent/y"],
            "/nonexistent/x",
        ),
        (["evaluate", "/nonexistent/run"], "/nonexistent/run"),
        (["train", *QUICK, "--threshold", "bogus", "--out", "/nonexistent/t"], "unknown threshold rule 'bogus'"),
        (["train", *QUICK, "--threshold", "percentile:200"], "percentile must be in [0, 100]"),
        (["score", "/nonexistent/run", ".", "--threshold", "nan"], "not a finite number"),
    ],
)
def test_bad_input_is_one_clear_line(args, needle, capsys):
    assert needle in in_process_error(capsys, *args)


def test_a_network_too_big_for_the_memory_is_one_line_naming_the_sizes_to_lower(tmp_path):
    """Width 4096 is allowed (a GPU may hold it) but not in 3 GB: say so by the user's names, not torch's."""
    capped = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)); "
        "from ganad.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    out = tmp_path / "run"
    args = ["train", "--dataset", "digits", "--epochs", "1", "--set", "width=4096", "--out", str(out), "-q"]
    proc = subprocess.run([sys.executable, "-c", capped, *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "DefaultCPUAllocator" not in proc.stderr
    msg = proc.stderr.strip()
    # the estimate made before allocating ("needs about ... GiB but ... is available") or, where it
    # underestimates, the allocator's failure caught ("out of memory ..."): one line either way
    assert re.match(r"ganad: error: (out of memory|training .* needs about)", msg) and len(msg.splitlines()) == 1, msg
    for needle in ("ganomaly", "width=4096", "batch 64", "--batch-size", "--set width=", "GiB"):
        assert needle in msg, needle


@pytest.mark.parametrize(("text", "field"), [("epoch: 3", "epoch"), ("row_scaling: zscore", "row_scaling")])
def test_bad_yaml_field_names_the_file_and_field(tmp_path, text, field, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model: ganomaly\n{text}\n")
    err = in_process_error(capsys, "train", "--config", str(cfg))
    assert str(cfg) in err and field in err


def test_killed_run_resumes_to_the_same_weights(tmp_path, interrupt_after_epochs):
    """SIGKILL after epoch 2 of 5, then --resume: bit-identical to an uninterrupted run."""
    args = [*QUICK, "--epochs", "5", "--maps", "0"]
    ganad("train", *args, "--out", str(tmp_path / "full"))
    out = tmp_path / "killed"
    interrupt_after_epochs(["train", *args, "--out", str(out)], out / "log.jsonl")
    assert not (out / "metrics.json").exists(), "the run finished before it could be killed"
    stale = out / ".checkpoint.safetensors.k1ll3d0x.tmp"  # what a kill mid-write leaves
    stale.write_bytes(b"half a file")
    users = out / ".notes.tmp"
    users.write_text("mine")
    user_error("train", *args, "--out", str(out))  # neither --resume nor --overwrite
    ganad("train", *args, "--out", str(out), "--resume")
    assert not stale.exists(), "a resumed run removes the killed writer's temporary files"
    assert users.read_text() == "mine", "and nothing else"
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    ma = json.loads((tmp_path / "full" / "metrics.json").read_text())["metrics"]
    mb = json.loads((out / "metrics.json").read_text())["metrics"]
    assert ma == mb


def test_datasets_lists_what_is_present(data_dir, capsys):
    out = cli(capsys, "datasets", "--data-dir", str(data_dir))[0]
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert "present" in lines["mnist"] and "present" in lines["kdd99"] and "built-in" in lines["digits"]
    assert "missing" in lines["cifar10"] or "present" in lines["cifar10"]


def test_users_own_image_folders_train_and_score(tmp_path, digits, capsys):
    """A practitioner's layout: good images to train on, normal/ + anomalous/ to evaluate."""
    x, y = digits
    _write_pngs(tmp_path / "good", x[y == 1][:120])
    for sub, imgs in (("normal", x[y == 1][120:150]), ("anomalous", x[y == 4][:30])):
        (tmp_path / "eval" / sub).mkdir(parents=True)
        for i, img in enumerate(imgs):
            Image.fromarray(img).convert("RGB").save(tmp_path / "eval" / sub / f"{i}.jpg", quality=95)
    out = tmp_path / "run"
    err = in_process_error(capsys, *_train_on_folders(tmp_path / "good", tmp_path / "eval", out))
    assert "mixed channels" in err or "channel" in err  # grey training images, RGB evaluation images
    cli(capsys, *_train_on_folders(tmp_path / "good", tmp_path / "eval", out, "--channels", "1", "--epochs", "30"))
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert metrics["auroc"] > 0.8  # digit 4 among 1s: an easy, real separation (chance 0.5)
    assert (out / "heatmaps.png").is_file()
    csv_text, _ = cli(capsys, "score", str(out), str(tmp_path / "good"), "-q")
    assert len(csv_text.strip().splitlines()) == 121
    # RGB images, a model trained with --channels 1: converted to grey as in training, not refused
    csv_text, _ = cli(capsys, "score", str(out), str(tmp_path / "eval" / "anomalous"), "-q")
    assert len(csv_text.strip().splitlines()) == 31


def _one_epoch_on_grey_folders(tmp_path: Path, digits, *extra: str) -> Path:
    """A run trained for one epoch on grey digit folders (1s normal, 4s anomalous); returns its folder."""
    x, y = digits
    _write_pngs(tmp_path / "good", x[y == 1][:64])
    _write_pngs(tmp_path / "eval" / "normal", x[y == 1][64:80])
    _write_pngs(tmp_path / "eval" / "anomalous", x[y == 4][:16])
    out = tmp_path / "run"
    from ganad.cli import main

    assert main(list(_train_on_folders(tmp_path / "good", tmp_path / "eval", out, *extra, "--epochs", "1"))) == 0
    return out


def test_a_run_trained_with_channels_1_scores_colour_images_as_grey(tmp_path, digits, digit_pngs, capsys):
    """--channels 1 converted every training image to grey; scoring converts the same way, not refuses."""
    out = _one_epoch_on_grey_folders(tmp_path, digits, "--channels", "1")
    capsys.readouterr()  # the training's own summary
    grey, rgb = digit_pngs(6, "grey"), digit_pngs(6, "rgb", mode="RGB")
    for f in rgb.iterdir():
        with Image.open(f) as im:
            assert im.mode == "RGB", f  # really colour files: the run must convert them
    scored = {}
    for folder in (grey, rgb):
        rows = cli(capsys, "score", str(out), str(folder), "-q")[0].splitlines()
        assert rows[0] == "input,score,predicted" and len(rows) == 7
        scored[folder.name] = [(Path(r.split(",")[0]).name, *r.split(",")[1:]) for r in rows[1:]]
    assert scored["rgb"] == scored["grey"]


def test_colour_files_given_to_a_grey_model_are_converted_with_a_note(tmp_path, digits, digit_pngs, capsys):
    """Issue 20: ``ganad score`` converts colour to grey for a 1-channel model (as --channels 1 does) and
    says so in one line, instead of refusing; the colour copy of a digit scores as the grey one."""
    out = _one_epoch_on_grey_folders(tmp_path, digits)
    capsys.readouterr()  # the training's own summary
    digit_pngs(3, "mixed/grey")
    digit_pngs(3, "mixed/colour", mode="RGB")
    code, csv_text, err = in_process(capsys, "score", str(out), str(tmp_path / "mixed"), "-q")
    assert code == 0, err
    assert "note: 3 colour image(s) converted to grey for this 1-channel model" in err
    rows = [r.split(",") for r in csv_text.splitlines()[1:]]
    by_name = {}
    for name, score, _ in rows:
        by_name.setdefault(Path(name).name, []).append(score)
    assert len(rows) == 6 and all(len(set(v)) == 1 for v in by_name.values()), by_name


def test_users_own_csv_train_and_score(tmp_path, data_dir, capsys):
    """KDD rows written as a user's CSV with a categorical column and a named label column."""
    import gzip

    with gzip.open(data_dir / "kddcup99" / "kddcup.data_10_percent.gz", "rt") as f:
        lines = [next(f) for _ in range(20000)]
    rng = np.random.default_rng(0)
    rows = [lines[i].strip().split(",") for i in rng.permutation(len(lines))[:3000]]
    header = "duration,protocol,service,flag,src_bytes,dst_bytes,count,srv_count,label\n"

    def write(path: Path, rs: list[list[str]]) -> Path:
        path.write_text(
            header
            + "".join(
                ",".join([r[0], r[1], r[2], r[3], r[4], r[5], r[22], r[23], "attack" if r[-1] == "normal." else "ok"])
                + "\n"
                for r in rs
            )
        )
        return path

    train, test = write(tmp_path / "train.csv", rows[:2000]), write(tmp_path / "test.csv", rows[2000:])
    out = tmp_path / "run"
    summary, _ = cli(
        capsys,
        "train",
        "--dataset",
        "csv",
        "--train-csv",
        str(train),
        "--test-csv",
        str(test),
        "--label-column",
        "label",
        "--anomaly-value",
        "attack",
        "--epochs",
        "5",
        "--out",
        str(out),
    )
    # not a terminal: one plain line per epoch (losses, time) instead of a bar redrawn into the log
    epochs = [line for line in summary.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == [f"{i}/5" for i in range(1, 6)], summary
    assert "adversarial=" in epochs[0] and "s (total" in epochs[0]
    rec = json.loads((out / "metrics.json").read_text())
    assert rec["metrics"]["n"] == 1000 and 0 <= rec["metrics"]["auroc"] <= 1
    assert "ganomaly on csv (custom, seed 0)" in summary, "the protocol used; no --class it ignores"
    assert rec["protocol"] == "custom" and rec["cls"] is None
    scored = cli(capsys, "score", str(out), str(test), "-q")[0].strip().splitlines()
    assert len(scored) == 1001 and scored[1].startswith(f"{test}:2,")
    # the run's own test file scored again: exactly the run's predictions, at the run's threshold
    _, err = cli(capsys, "score", str(out), str(test), "--output", str(tmp_path / "again.csv"), "-q")
    assert f"threshold {rec['metrics']['threshold']:.6g} ({rec['threshold_description']}" in err
    again = [r.split(",")[-1] for r in (tmp_path / "again.csv").read_text().splitlines()[1:]]
    assert again == [r.split(",")[-1] for r in (out / "scores.csv").read_text().splitlines()[1:]]
    assert 0 < again.count("1") < len(again)
    lowered = cli(capsys, "score", str(out), str(test), "--threshold=-1e30", "-q")[0].splitlines()[1:]
    assert {r.split(",")[-1] for r in lowered} == {"1"}
    # evaluate re-scores with the saved threshold, not one rebuilt from the saved score range
    evaluated = json.loads(cli(capsys, "evaluate", str(out), "--json", "-q")[0])
    for k in ("threshold", "precision", "recall", "f1"):
        assert evaluated["metrics"][k] == pytest.approx(rec["metrics"][k], abs=1e-9), k
    bad = write(tmp_path / "bad.csv", rows[:3])
    bad.write_text(bad.read_text().replace(",tcp,", ",xyz,", 1))
    err = in_process_error(capsys, "score", str(out), str(bad))
    assert "bad.csv" in err and "row 2" in err and "'protocol'" in err


def test_threads_caps_torch_and_a_bad_value_is_named(run_dir, tmp_path, monkeypatch, capsys):
    """--threads, else $GANAD_NUM_THREADS, else the cores not already busy: used by the command, recorded
    with the run, and the caller's own torch setting back afterwards."""
    import torch

    from ganad.cli import main

    def threads_of(*extra: str, out: str) -> int:
        assert main(["train", *QUICK, "--epochs", "1", "--maps", "0", "--out", str(tmp_path / out), *extra]) == 0
        assert torch.get_num_threads() == 2, "the caller's setting is restored"
        return json.loads((tmp_path / out / "metrics.json").read_text())["threads"]

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert threads_of("--threads", "1", out="flag") == 1
        monkeypatch.setenv("GANAD_NUM_THREADS", "1")
        assert threads_of(out="env") == 1
        monkeypatch.delenv("GANAD_NUM_THREADS")
        # neither asked: the cores not already busy (resources.free_cores), never torch's every-core default
        monkeypatch.setattr("ganad.resources.free_cores", lambda: 1)
        assert threads_of(out="free") == 1
    finally:
        torch.set_num_threads(before)
    assert "--threads" in in_process_error(capsys, "evaluate", str(run_dir), "--threads", "0")
    monkeypatch.setenv("GANAD_NUM_THREADS", "two")
    assert "GANAD_NUM_THREADS" in in_process_error(capsys, "evaluate", str(run_dir))
