"""ganad.checkpoint: checkpoints never run code, and a pair of files that does not belong together is refused
(docs/guarantees.md, "Checkpoints load without pickle")."""

from __future__ import annotations

import contextlib
import json
import pickle
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import one_line_error, one_line_error_in_a_process, props
from hypothesis import given
from hypothesis import strategies as st
from safetensors.numpy import load_file

import ganad
from ganad import scoring
from ganad.config import RunConfig
from ganad.errors import CheckpointError, DataError, GanadError
from ganad.run import train

SRC = Path(ganad.__file__).parent


# == 3. checkpoints ==========================================================================
def test_loading_never_unpickles(saved, monkeypatch):
    """With every unpickling entry point booby-trapped, loading and scoring still work."""
    det, path, x = saved

    def trap(*a, **k):
        raise AssertionError("pickle was used")

    monkeypatch.setattr(pickle, "load", trap)
    monkeypatch.setattr(pickle, "loads", trap)
    monkeypatch.setattr(pickle, "Unpickler", trap)
    monkeypatch.setattr(torch, "load", trap)
    back = ganad.load(path)
    np.testing.assert_array_equal(back.decision_function(x), det.decision_function(x))


def test_no_pickle_in_the_source():
    for f in SRC.rglob("*.py"):
        text = f.read_text()
        assert not re.search(r"^\s*(import pickle|from pickle)|torch\.load\(|allow_pickle=True", text, re.M), f


class _Payload:
    """Unpickling this creates ``marker``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_payload_in_place_of_the_weights_never_runs(saved, tmp_path, image_run):
    """A torch.save / pickle file named model.safetensors (or .npy) is refused and its code never runs."""
    _, path, _ = saved
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil"
    shutil.copytree(path, evil)
    torch.save({"w": _Payload(marker)}, evil / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        ganad.load(evil)
    npy = tmp_path / "evil.npy"
    np.save(npy, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"evil\.npy"):
        scoring.score_paths(image_run, [npy], progress=False)
    assert "evil.npy" in one_line_error_in_a_process("score", str(image_run), str(npy))
    assert not marker.exists(), "the payload ran"


def test_checkpoint_from_another_version_is_refused(saved, tmp_path):
    _, path, _ = saved
    copy = tmp_path / "m"
    shutil.copytree(path, copy)
    meta = json.loads((path / "model.json").read_text())
    meta["ganad_version"] = "9.0.0"
    (copy / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"written by ganad 9\.0\.0, but this is ganad"):
        ganad.load(copy)


def test_checkpoint_of_another_model_is_refused(saved, tmp_path):
    _, path, _ = saved
    with pytest.raises(CheckpointError, match="'ganomaly' detector, not 'anogan'"):
        ganad.load(path, expect_model="anogan")
    with pytest.raises(CheckpointError, match="'ganomaly' detector, not 'egbad'"):
        ganad.EGBAD.load(path)
    copy = tmp_path / "m"
    shutil.copytree(path, copy)
    meta = json.loads((copy / "model.json").read_text())
    meta["model"] = "egbad"
    meta["hparams"], meta["params"] = {}, {}  # EGBAD's paper defaults
    (copy / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"not written for a egbad model for image input \(1, 16, 16\)"):
        ganad.load(copy)


def test_weights_for_another_input_shape_are_refused_naming_the_shapes(saved, digits, tmp_path):
    """Weights of a 8x8 model beside the JSON of a 16x16 one: the message names model, input and tensor."""
    _, path, _ = saved
    x, y = digits
    small = tmp_path / "small"
    ganad.GANomaly(epochs=1, batch_size=32, verbose=False).fit(x[y == 3][:64]).save(small)  # 8x8 input
    mixed = tmp_path / "mixed"
    shutil.copytree(path, mixed)
    shutil.copy(small / "model.safetensors", mixed / "model.safetensors")
    with pytest.raises(CheckpointError) as e:
        ganad.load(mixed)
    assert "not written for a ganomaly model for image input (1, 16, 16)" in str(e.value)


def test_weights_swapped_or_edited_are_refused(saved, digits, tmp_path):
    """Same architecture, other weights (another seed), or one flipped byte: refused, not loaded silently."""
    _, path, _ = saved
    x, y = digits
    other = tmp_path / "other"
    ganad.GANomaly(epochs=1, batch_size=32, image_size=16, seed=1, verbose=False).fit(x[y == 3][:64]).save(other)
    swapped = tmp_path / "swapped"
    shutil.copytree(path, swapped)
    shutil.copy(other / "model.safetensors", swapped / "model.safetensors")
    with pytest.raises(CheckpointError, match="sha256 differs"):
        ganad.load(swapped)
    edited = tmp_path / "edited"
    shutil.copytree(path, edited)
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-5] ^= 0x40  # inside the last tensor's bytes: still a valid safetensors file
    (edited / "model.safetensors").write_bytes(bytes(data))
    assert load_file(edited / "model.safetensors")  # parses fine ...
    with pytest.raises(CheckpointError, match="sha256 differs"):  # ... but is not what was saved
        ganad.load(edited)


@pytest.mark.parametrize(
    ("name", "cut"),
    [(n, c) for n in ("model.safetensors",) for c in (0, 8, 100, -50)]
    + [(n, c) for n in ("model.json",) for c in (0, 1, 200, -3)],
)
def test_a_truncated_file_is_refused_naming_it(saved, tmp_path, name, cut):
    _, path, _ = saved
    copy = tmp_path / "m"
    shutil.copytree(path, copy)
    (copy / name).write_bytes((path / name).read_bytes()[:cut])
    with pytest.raises(CheckpointError, match=re.escape(name)):
        ganad.load(copy)


JUNK = st.sampled_from([None, "x", -1, 0, 2.5, True, [], {}, [1, 2], {"a": 1}, "9.0.0", 1e300, 4096, 2**31])


def _paths(meta: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for k, v in meta.items():
        out.append((*prefix, k))
        if isinstance(v, dict) and k != "optimizers":
            out += _paths(v, (*prefix, k))
    return out


@props(30)
@given(data=st.data())
def test_any_edited_field_of_model_json_loads_or_raises_checkpoint_error(saved, tmp_path, data):
    """model.json is a file users can open and edit: any change either loads and scores, or is a CheckpointError."""
    _, path, x = saved
    meta = json.loads((path / "model.json").read_text())
    keys = data.draw(st.sampled_from(sorted(_paths(meta), key=str)))
    target = meta
    for k in keys[:-1]:
        target = target[k]
    if data.draw(st.booleans()):
        del target[keys[-1]]
    else:
        target[keys[-1]] = data.draw(JUNK)
    copy = tmp_path / "m"
    copy.mkdir(exist_ok=True)
    shutil.copy(path / "model.safetensors", copy / "model.safetensors")
    (copy / "model.json").write_text(json.dumps(meta))
    try:
        det = ganad.load(copy)
    except CheckpointError as e:
        assert "model.json" in str(e) or "model.safetensors" in str(e), e
        return
    with contextlib.suppress(GanadError):
        assert det.decision_function(x[:4]).shape == (4,)


EDIT_SIZES = textwrap.dedent(
    """
    import json, resource, shutil, sys
    from pathlib import Path
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # the nets these sizes ask for need far more
    import ganad
    from ganad.errors import CheckpointError
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    edits = json.loads(sys.argv[3])
    said = {}
    for name, edit in edits.items():
        meta = json.loads((src / "model.json").read_text())
        for dotted, value in edit.items():
            *head, last = dotted.split(".")
            target = meta
            for k in head:
                target = target[k]
            target[last] = value
        d = out / name
        shutil.copytree(src, d)
        (d / "model.json").write_text(json.dumps(meta))
        try:
            ganad.load(d)
            said[name] = "loaded"
        except CheckpointError as e:
            said[name] = str(e)
    print(json.dumps(said))
    """
)


def test_sizes_edited_in_model_json_are_refused_before_any_network_is_allocated(saved, tmp_path):
    """A size in model.json must agree with the weights file before it sizes a network.

    Each edit below asks for networks of several GB (or, for 1e300 extra layers, a loop
    that never ends); the loader runs with 3 GB of address space and must refuse each
    with a message about the field or the weights, not a failed allocation.
    """
    _, path, _ = saved
    edits = {
        "layers": {"hparams.extra_layers": 1e300},
        "width": {"hparams.width": 4096},
        "nz": {"hparams.nz": 65536},
        "image": {"preprocessing.image_size": [4096, 4096], "spec.shape": [1, 4096, 4096]},
    }
    proc = subprocess.run(
        [sys.executable, "-c", EDIT_SIZES, str(path), str(tmp_path), json.dumps(edits)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    said = json.loads(proc.stdout)
    assert "'ganomaly.extra_layers' must be between 0 and 64" in said["layers"]
    for name in ("width", "nz", "image"):
        assert "weights were not written for a ganomaly model" in said[name], said[name]
        assert "allocate" not in said[name], said[name]


@pytest.mark.parametrize("scores", [{"min": 0.2, "max": 1e300}, {"min": 0.9, "max": 0.1}])
def test_training_scores_that_no_fit_could_give_are_refused(saved, tmp_path, scores):
    """The saved min / max of the training scores come from float32 scores, so min <= max, both float32."""
    _, path, _ = saved
    copy = tmp_path / "m"
    shutil.copytree(path, copy)
    meta = json.loads((copy / "model.json").read_text())
    meta["train_scores"] = scores
    (copy / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"model\.json: field 'train_scores'"):
        ganad.load(copy)


def test_resuming_with_another_input_shape_says_what_differs(tmp_path):
    cfg = RunConfig(dataset="digits", cls=0, image_size=16, epochs=1, max_train=64, maps=0)
    train(cfg, tmp_path / "run", progress=False)
    with pytest.raises(GanadError, match="config differs in: image_size"):
        train(cfg.replace(image_size=12), tmp_path / "run", resume=True, progress=False)
    flags = ["--dataset", "digits", "--class", "0", "--epochs", "1", "--max-train", "64", "--maps", "0"]
    err = one_line_error("train", *flags, "--image-size", "12", "--out", str(tmp_path / "run"), "--resume", "-q")
    assert err.endswith("config differs in: image_size (use a new --out or --overwrite)")
