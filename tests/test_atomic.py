"""ganad.atomic: writes are atomic, a killed writer leaves a loadable checkpoint, a finished run is marked last
(docs/guarantees.md, "Crash safety")."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import ganad
from ganad import atomic, checkpoint
from ganad.bench import store
from ganad.config import RunConfig
from ganad.detector import Detector
from ganad.errors import CheckpointError
from ganad.run import METRICS, RUN_FILES, train

SRC = Path(ganad.__file__).parent


# == 4. atomic writes, crash safety ==========================================================
def test_atomic_write_leaves_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    atomic.atomic_write_json(target, {"a": 1})

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic.atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temp file left


WRITER = textwrap.dedent(
    """
    import sys, torch
    from pathlib import Path
    from ganad import checkpoint
    from ganad.data.types import InputSpec
    from ganad.models.ganomaly import GANomaly
    model = GANomaly(InputSpec("image", (1, 16, 16)), nz=16)
    path = Path(sys.argv[1]) / "checkpoint.safetensors"
    gen = 0
    while True:  # each generation: weights filled with gen, meta says gen
        gen += 1
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(gen)
        checkpoint.save(path, model, {"gen": gen}, with_optimizers=True)
        if gen == 2:
            print("saving", flush=True)
    """
)


def test_a_checkpoint_writer_killed_at_random_moments_leaves_a_matching_pair(tmp_path):
    """SIGKILL while checkpoints are being rewritten: the pair on disk is always one save, whole."""
    procs = []
    for i in range(2):
        d = tmp_path / f"w{i}"
        d.mkdir()
        procs.append((d, subprocess.Popen([sys.executable, "-c", WRITER, str(d)], stdout=subprocess.PIPE, text=True)))
    rng = random.Random(0)
    for _, proc in procs:
        assert proc.stdout.readline().strip() == "saving"
        time.sleep(rng.uniform(0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    from ganad.data.types import InputSpec
    from ganad.models.ganomaly import GANomaly

    for d, _ in procs:
        checkpoint.remove_stale_temps(d, RUN_FILES)  # what a resumed run does first
        assert not list(d.glob(".*.tmp")), "no temporary file is left"
        path = d / "checkpoint.safetensors"
        meta = checkpoint.read_meta(path)
        model = GANomaly(InputSpec("image", (1, 16, 16)), nz=16)
        checkpoint.load_into(model, path, meta, with_optimizers=True)
        values = {float(p.detach().flatten()[0]) for p in model.parameters()}
        assert values == {float(meta["gen"])}, "weights and JSON come from the same save"


def _checkpoint_of(folder: Path, gen: int) -> Path:
    from ganad.data.types import InputSpec
    from ganad.models.ganomaly import GANomaly

    torch.manual_seed(gen)
    model = GANomaly(InputSpec("image", (1, 16, 16)), nz=16)
    path = folder / "checkpoint.safetensors"
    checkpoint.save(path, model, {"gen": gen}, with_optimizers=True)
    return path


def test_a_save_killed_between_its_two_renames_is_finished_by_the_resume(tmp_path):
    """The exact state SIGKILL leaves between the renames: new tensors, old JSON, new JSON as a temp file."""
    path = _checkpoint_of(tmp_path, 1)
    newer = _checkpoint_of(tmp_path / "newer", 2)
    shutil.copy(newer, path)  # the first rename happened...
    pending = tmp_path / ".checkpoint.json.k1ll3d0x.tmp"
    shutil.copy(newer.with_suffix(".json"), pending)  # ...the second did not
    with pytest.raises(CheckpointError, match="sha256"):
        checkpoint.read_tensors(path, checkpoint.read_meta(path)["tensors_sha256"])
    half = tmp_path / ".checkpoint.safetensors.h4lfd0ne.tmp"
    half.write_bytes(b"half a file")
    assert checkpoint.remove_stale_temps(tmp_path, RUN_FILES) == [half]
    assert checkpoint.read_meta(path)["gen"] == 2 and not pending.exists()
    checkpoint.read_tensors(path, checkpoint.read_meta(path)["tensors_sha256"])  # a matching pair again


def test_a_save_killed_before_its_first_rename_keeps_the_old_pair(tmp_path):
    path = _checkpoint_of(tmp_path, 1)
    newer = _checkpoint_of(tmp_path / "newer", 2)
    shutil.copy(newer, tmp_path / ".checkpoint.safetensors.k1ll3d0x.tmp")
    shutil.copy(newer.with_suffix(".json"), tmp_path / ".checkpoint.json.k1ll3d0y.tmp")
    assert len(checkpoint.remove_stale_temps(tmp_path, RUN_FILES)) == 2
    assert checkpoint.read_meta(path)["gen"] == 1
    checkpoint.read_tensors(path, checkpoint.read_meta(path)["tensors_sha256"])


def test_a_run_killed_before_its_model_is_saved_is_not_counted_as_finished(tmp_path, monkeypatch):
    """metrics.json marks a finished run (grids skip such trials), so it is written after the model."""
    cfg = RunConfig(dataset="digits", cls=0, image_size=16, epochs=1, max_train=64, max_test=64, maps=0)
    out = tmp_path / "run"

    def killed(self, *a, **k):
        raise KeyboardInterrupt  # stands for SIGKILL at this line

    monkeypatch.setattr(Detector, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, out, progress=False)
    assert (out / "scores.csv").is_file() and not (out / METRICS).exists()
    monkeypatch.undo()
    train(cfg, out, resume=True, progress=False)  # continues: loads the last checkpoint, evaluates, saves
    assert (out / METRICS).is_file() and ganad.load(out).threshold_ is not None


def test_results_store_survives_a_torn_last_line(tmp_path):
    """A writer killed mid-line: the next record starts on its own line and is not lost."""
    store.append(tmp_path, {"trial": "a", "status": "ok"})
    with (tmp_path / store.RESULTS).open("a") as f:
        f.write('{"trial": "b", "stat')  # what SIGKILL during a write leaves
    store.append(tmp_path, {"trial": "b", "status": "ok"})
    with pytest.warns(UserWarning, match="damaged line"):
        recs = store.read(tmp_path)
    assert [(r["trial"], r["status"]) for r in recs] == [("a", "ok"), ("b", "ok")]
