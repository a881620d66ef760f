"""Shared fixtures: the real data sets (from $GANAD_DATA_DIR or ../shared/datasets)."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ganad
from ganad.config import RunConfig
from ganad.data.synthetic import write_mvtec_like
from ganad.run import train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The offline folder with the original data files; tests need it, so its absence is an error."""
    d = Path(os.environ.get("GANAD_DATA_DIR") or REPO.parent / "shared" / "datasets")
    if not (d / "mnist").is_dir():
        pytest.fail(f"data sets not found in {d}: set GANAD_DATA_DIR to the folder described in README")
    return d


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as uint8 images (N, 8, 8) and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return np.round(d.images * 255 / 16).astype(np.uint8), d.target.astype(np.int64)


@pytest.fixture()
def digit_pngs(tmp_path, digits) -> Callable[..., Path]:
    """Writes ``n`` digits (from the ``first``) as ``d0.png``, ``d1.png``, ... into ``tmp_path / name``.

    Scoring tests in several files need the same small folder of real images; ``mode="RGB"`` writes
    the same pixels as three equal channels (a colour file of a grey picture), and ``first`` gives
    folders whose files share names but not pictures.
    """
    x, _ = digits

    def write(n: int, name: str = "imgs", mode: str = "L", first: int = 0) -> Path:
        folder = tmp_path / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(x[first + i]).convert(mode).save(folder / f"d{i}.png")
        return folder

    return write


def _children(pid: int) -> list[int]:
    """The process ids whose parent is ``pid`` (Linux /proc)."""
    f = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in f.read_text().split()] if f.is_file() else []


@pytest.fixture()
def interrupt_after_epochs() -> Callable[..., tuple[subprocess.Popen, list[int]]]:
    """Starts ``ganad ARGS`` and signals it once ``log`` holds ``epochs`` finished epochs.

    Kill-and-resume tests (one run, a grid) share this set-up. Returns the
    finished process and the ids of its child processes at the moment of the
    signal (a grid's workers), so a test can check none outlives it.
    """

    def run(
        args: list[str], log: Path, epochs: int = 2, sig: int = signal.SIGKILL
    ) -> tuple[subprocess.Popen, list[int]]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ganad.cli", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if log.is_file() and len(log.read_text().splitlines()) >= epochs:
                break
            time.sleep(0.05)
        children = _children(proc.pid)
        proc.send_signal(sig)
        proc.wait(timeout=120)
        return proc, children

    return run


@pytest.fixture()
def mvtec_tree(tmp_path) -> Callable[..., Path]:
    """A small synthetic category in the MVTec AD layout (no test may need the real archive).

    Textured 32x32 images (a fixed weave plus noise): ``train/good`` and ``test/good`` are the
    texture; ``test/scratch`` adds a bright line and ``test/hole`` a dark square, each with its
    ``ground_truth/<defect>/<id>_mask.png``.
    """

    def make(category: str = "widget", n_train: int = 60, n_test: int = 8, mode: str = "L") -> Path:
        return write_mvtec_like(tmp_path / "mvtec", category, n_train=n_train, n_test=n_test, mode=mode)

    return make


from helpers import csv_table, write_csv  # noqa: E402


# -- small real runs and saved detectors the guarantee tests share (built once per test module) --
@pytest.fixture(scope="module")
def saved(tmp_path_factory, digits):
    x, y = digits
    det = ganad.GANomaly(epochs=2, batch_size=32, image_size=16, verbose=False).fit(x[y == 3][:100])
    path = tmp_path_factory.mktemp("det") / "m"
    det.save(path)
    return det, path, x[:20]


@pytest.fixture(scope="module")
def kdd_rows(data_dir) -> list[list[str]]:
    """600 real KDD Cup 99 rows (seeded sample of the first 20,000 lines: normal traffic and attacks)."""
    with gzip.open(data_dir / "kddcup99" / "kddcup.data_10_percent.gz", "rt") as f:
        lines = [next(f).strip().split(",") for _ in range(20000)]
    rng = np.random.default_rng(0)
    return [lines[i] for i in rng.permutation(len(lines))[:600]]


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory, kdd_rows) -> Path:
    """A tabular run folder trained on a user's CSV (1 epoch: the tests need its encoding, not its skill)."""
    d = tmp_path_factory.mktemp("csvrun")
    table = csv_table(kdd_rows)
    train_csv = write_csv(d / "train.csv", table[:400])
    test_csv = write_csv(d / "test.csv", table[400:])
    cfg = RunConfig(
        dataset="csv",
        train_csv=str(train_csv),
        test_csv=str(test_csv),
        label_column="label",
        anomaly_value="attack",
        epochs=1,
        params={"nz": 8},
        maps=0,
    )
    train(cfg, d / "run", progress=False)
    return d / "run"


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    """A grey 16x16 image run folder on the digits (1 epoch)."""
    out = tmp_path_factory.mktemp("imgrun") / "run"
    train(RunConfig(dataset="digits", cls=0, image_size=16, epochs=1, max_train=64, maps=0), out, progress=False)
    return out
