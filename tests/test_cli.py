"""The ``ganad`` command through a real subprocess, as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import load_file

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


def user_error(*args: str) -> str:
    """Run a command that must fail as a user error: exit 2, one message, no traceback."""
    proc = ganad(*args, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("ganad: error: ") or "error:" in proc.stderr
    return proc.stderr


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "quick"
    proc = ganad("train", *QUICK, "--epochs", "6", "--out", str(out))
    assert "AUROC" in proc.stdout
    return out


def test_help_explains_every_command():
    top = ganad("--help").stdout
    for cmd in ("train", "evaluate", "score", "datasets", "models"):
        assert cmd in top
        assert "usage" in ganad(cmd, "--help").stdout


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


def test_evaluate_reproduces_the_training_metrics(run_dir):
    rec = json.loads(ganad("evaluate", str(run_dir), "--json", "-q").stdout)
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert rec["metrics"]["auroc"] == pytest.approx(saved["metrics"]["auroc"], abs=1e-9)


def test_score_folder_writes_csv_and_heat_maps(run_dir, tmp_path, digits):
    x, _ = digits
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(x[i]).save(folder / f"d{i}.png")
    out = tmp_path / "scores.csv"
    ganad("score", str(run_dir), str(folder), "--output", str(out), "--maps", str(tmp_path / "maps"), "-q")
    rows = out.read_text().splitlines()
    assert rows[0] == "input,score,predicted" and len(rows) == 4
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == [f"d{i}_map.png" for i in range(3)]
    err = user_error("score", str(run_dir), str(folder), "--output", str(out))
    assert "already exists" in err


def test_existing_run_folder_is_never_overwritten_silently(run_dir):
    before = (run_dir / "model.safetensors").read_bytes()
    err = user_error("train", *QUICK, "--epochs", "1", "--out", str(run_dir))
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
        (["train", "--config", "does-not-exist.yaml"], "does-not-exist.yaml"),
        (
            ["train", "--dataset", "folder", "--train-dir", "/nonexistent/x", "--test-dir", "/nonexistent/y"],
            "/nonexistent/x",
        ),
        (["evaluate", "/nonexistent/run"], "/nonexistent/run"),
    ],
)
def test_bad_input_is_one_clear_line(args, needle):
    assert needle in user_error(*args)


def test_bad_yaml_field_names_the_file_and_field(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: ganomaly\nepoch: 3\n")
    err = user_error("train", "--config", str(cfg))
    assert str(cfg) in err and "epoch" in err


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    """SIGKILL after epoch 2 of 5, then --resume: bit-identical to an uninterrupted run."""
    args = [*QUICK, "--epochs", "5", "--maps", "0"]
    ganad("train", *args, "--out", str(tmp_path / "full"))
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ganad.cli", "train", *args, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = out / "log.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if log.is_file() and len(log.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "metrics.json").exists(), "the run finished before it could be killed"
    user_error("train", *args, "--out", str(out))  # neither --resume nor --overwrite
    ganad("train", *args, "--out", str(out), "--resume")
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    ma = json.loads((tmp_path / "full" / "metrics.json").read_text())["metrics"]
    mb = json.loads((out / "metrics.json").read_text())["metrics"]
    assert ma == mb
