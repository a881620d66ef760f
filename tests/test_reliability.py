"""The guarantees of docs/guarantees.md, one section each, on real data (digits, MNIST and KDD Cup 99 files).

1. bad input is ganad's own error naming the file, row, column or shape (API and CLI; property-based);
2. downloads are verified (tests/test_data.py);
3. checkpoints never run code, and a pair of files that does not belong together is refused (tests/test_checkpoint.py);
4. writes are atomic, a killed writer leaves a loadable checkpoint, a finished run is marked last
   (tests/test_atomic.py);
5. diverging GANs stop cleanly (tests/test_engine.py);
6. nothing a user wrote is replaced without --overwrite;
7. scoring streams (tests/test_scoring.py).

Sections 1, 6 and the issue-18 round span several modules and stay here; the shared fixtures are in
conftest.py and the helpers in helpers.py.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import string
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import (
    CSV_COLUMNS,
    csv_table,
    ganad_main,
    one_line_error,
    one_line_error_in_a_process,
    png_bytes,
    props,
    write_csv,
)
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

import ganad
from ganad import atomic, checkpoint
from ganad.bench import store
from ganad.data import load_csv, read_image_files
from ganad.data.sources import read_idx, read_kdd, read_npy
from ganad.errors import CheckpointError, DataError, GanadError, TrainingError
from ganad.run import METRICS, RUN_FILES

SRC = Path(ganad.__file__).parent


# == 1. bad input ============================================================================
# The API side of each case is in tests/test_data.py (loaders) and tests/test_detector.py
# (arrays of the wrong shape); here the same mistakes go through the command line.
@pytest.mark.parametrize(
    "case",
    [
        "nan-cell",
        "text-cell",
        "empty-file",
        "missing-file",
        "duplicate-column",
        "unexpected-label",
        "no-anomaly",
        "no-normal-left",
    ],
)
def test_bad_csv_on_the_command_line_is_one_line_naming_file_row_column(tmp_path, kdd_rows, case):
    table = csv_table(kdd_rows[:200])
    train_csv, test_csv = tmp_path / "train.csv", tmp_path / "test.csv"
    write_csv(train_csv, table[:150])
    write_csv(test_csv, table[150:])
    needles = [str(train_csv)]
    header = CSV_COLUMNS
    if case == "nan-cell":
        table[6][2] = "nan"
        needles += ["row 8", "column 'src_bytes'", "NaN/inf"]
    elif case == "text-cell":
        table[9][4] = "12a"
        needles += ["row 11", "column 'count'", "'12a' is not a number"]
    elif case == "duplicate-column":
        header = [*CSV_COLUMNS[:-2], "count", "label"]
        needles += ["duplicate column name(s): count"]
    elif case == "no-anomaly":  # --anomaly-value that no row carries: the test split would hold no anomaly
        table = [[*r[:-1], "ok"] for r in table]
        needles += ["no anomalous samples", "label == 'attack'"]
    elif case == "no-normal-left":  # one normal row, placed where the seed-0 shuffle sends it: the test side
        attacks = [r for r in table if r[-1] == "attack"][:20]
        test_side = np.random.default_rng(0).permutation(21)[int(0.8 * 21) :]
        table = attacks[: test_side[0]] + [r for r in table if r[-1] == "ok"][:1] + attacks[test_side[0] :]
        needles += ["no normal samples left for training", "(1 normal of 21 in all)"]
    if case == "empty-file":
        train_csv.write_text("")
        needles += ["empty file"]
    elif case == "missing-file":
        train_csv = tmp_path / "nosuch.csv"
        needles = [str(train_csv), "file not found"]
    else:
        write_csv(train_csv, table[:150] if case != "no-normal-left" else table, header)
    extra = []
    if case == "unexpected-label":  # a typo in the test CSV's labels would silently count as normal
        bad = [list(r) for r in table[150:]]
        bad[3][-1] = "atack"
        write_csv(test_csv, bad)
        extra = ["--test-csv", str(test_csv)]
        needles = [str(test_csv), "row 5", "column 'label'", "'atack'"]
    err = one_line_error(
        "train",
        "--dataset",
        "csv",
        "--train-csv",
        str(train_csv),
        *extra,
        "--label-column",
        "label",
        "--anomaly-value",
        "attack",
        "--out",
        str(tmp_path / "run"),
        "-q",
    )
    for n in needles:
        assert n in err, (n, err)
    assert not (tmp_path / "run").exists(), "bad data is refused before the run folder is made"


def _folder_args(train_dir: Path, test_dir: Path, out: Path) -> list[str]:
    return [
        "train",
        "--dataset",
        "folder",
        "--train-dir",
        str(train_dir),
        "--test-dir",
        str(test_dir),
        "--out",
        str(out),
        "-q",
    ]


@pytest.mark.parametrize("case", ["mixed-sizes", "truncated", "not-an-image", "empty-folder"])
def test_bad_image_folders_on_the_command_line_name_the_file(tmp_path, digits, case):
    x, y = digits
    train_dir, test_dir = tmp_path / "good", tmp_path / "eval"
    for d in (train_dir, test_dir / "normal", test_dir / "anomalous"):
        d.mkdir(parents=True)
    for i in range(6):
        Image.fromarray(x[y == 1][i]).save(train_dir / f"{i}.png")
        Image.fromarray(x[y == 1][10 + i]).save(test_dir / "normal" / f"{i}.png")
        Image.fromarray(x[y == 4][i]).save(test_dir / "anomalous" / f"{i}.png")
    culprit = train_dir / "3.png"
    if case == "mixed-sizes":
        Image.fromarray(np.kron(x[y == 1][3], np.ones((2, 2), np.uint8))).save(culprit)  # 16x16 among 8x8
        needles = ["mixed sizes", str(train_dir / "0.png"), str(culprit), "--image-size"]
    elif case == "truncated":
        culprit.write_bytes(culprit.read_bytes()[:60])
        needles = [str(culprit), "truncated"]
    elif case == "not-an-image":
        culprit.write_text("id,score\n1,2\n")
        needles = [str(culprit), "not a readable image"]
    else:
        shutil.rmtree(test_dir / "anomalous")
        (test_dir / "anomalous").mkdir()
        needles = [str(test_dir / "anomalous"), "no images found"]
    err = one_line_error(*_folder_args(train_dir, test_dir, tmp_path / "run"))
    for n in needles:
        assert n in err, (n, err)


@pytest.mark.parametrize("case", ["npy-wrong-width", "truncated-png", "csv-missing-column", "missing"])
def test_scoring_bad_inputs_on_the_command_line_names_file_and_shape(tmp_path, image_run, csv_run, digits, case):
    x, _ = digits
    run, needles = image_run, []
    if case == "npy-wrong-width":
        target, run = tmp_path / "rows.npy", csv_run
        np.save(target, np.zeros((4, 5), np.float32))  # 5 features; the tabular model has more
        needles = ["rows.npy", "has 5 features, but the model is expecting"]
    elif case == "truncated-png":
        target = tmp_path / "cut.png"
        target.write_bytes(png_bytes(x[0])[:50])
        needles = ["cut.png", "truncated"]
    elif case == "csv-missing-column":
        target, run = tmp_path / "score.csv", csv_run
        target.write_text("duration,protocol,src_bytes,count,srv_count\n0,tcp,200,1,1\n")
        needles = ["score.csv", "missing column(s): dst_bytes"]
    else:
        target = tmp_path / "nosuch"
        needles = ["nosuch", "no such file or folder"]
    err = one_line_error("score", str(run), str(target))
    for n in needles:
        assert n in err, (n, err)


# -- property-based: malformed CSV rows, image bytes, compressed files, arrays ----------------
CORRUPTIONS = ["text", "nan", "inf", "-inf", "empty", "huge", "extra-field", "missing-field", "empty-label"]


@props(120)
@given(
    kind=st.sampled_from(CORRUPTIONS),
    row=st.integers(0, 11),
    col=st.sampled_from([0, 2, 3, 4, 5]),
    text=st.text(string.ascii_letters + "-_ ", min_size=1, max_size=6),
    blank_lines=st.sets(st.integers(0, 12), max_size=3),
    as_test=st.booleans(),
)
def test_any_corrupt_cell_is_named_by_file_line_and_column(
    tmp_path, kdd_rows, kind, row, col, text, blank_lines, as_test
):
    """One bad cell in a real table: DataError naming the file, the line it is on and the column."""
    table = csv_table(kdd_rows[:12])
    value = {
        "text": text,
        "nan": "NaN",
        "inf": "inf",
        "-inf": "-Infinity",
        "empty": "",
        "huge": "1e39",
    }.get(kind)
    if kind == "text" and not text.strip():
        return  # only blanks: that is the "empty" case
    if kind == "extra-field":
        table[row].append("7")
    elif kind == "missing-field":
        table[row].pop(col)
    elif kind == "empty-label":
        table[row][-1] = ""
    else:
        table[row][col] = text if kind == "text" else value
    lines = [",".join(CSV_COLUMNS)]
    line_of_row = {}
    for i, r in enumerate(table):
        if i in blank_lines:
            lines.append("")  # blank lines are skipped, but still count for the line number
        lines.append(",".join(r))
        line_of_row[i] = len(lines)
    path = tmp_path / ("test.csv" if as_test else "train.csv")
    path.write_text("\n".join(lines) + "\n")
    like = load_csv(write_csv(tmp_path / "ref.csv", csv_table(kdd_rows[100:])), "label", "attack") if as_test else None
    with pytest.raises(DataError) as e:
        load_csv(path, "label", "attack", like=like)
    msg = str(e.value)
    assert str(path) in msg and f"row {line_of_row[row]}" in msg, msg
    if kind not in ("extra-field", "missing-field"):
        name = CSV_COLUMNS[-1] if kind == "empty-label" else CSV_COLUMNS[col]
        assert f"column '{name}'" in msg, msg


@props(150)
@given(data=st.binary(max_size=200), header=st.sampled_from([b"x,y,label\n", b"label\n", b"", b"a,a,label\n"]))
def test_any_csv_bytes_load_or_raise_data_error_naming_the_file(tmp_path, data, header):
    p = tmp_path / "gen.csv"
    p.write_bytes(header + data)
    try:
        src = load_csv(p, "label", "bad")
    except DataError as e:
        assert "gen.csv" in str(e)
    else:
        assert np.isfinite(src.train.x).all() and len(src.train.x) == len(src.train.y)


IMAGE_FORMATS = [
    ("PNG", ".png"),
    ("JPEG", ".jpg"),
    ("GIF", ".gif"),
    ("BMP", ".bmp"),
    ("TIFF", ".tif"),
    ("WEBP", ".webp"),
]


@props(200)
@given(
    fmt=st.sampled_from(IMAGE_FORMATS),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=4),
)
def test_corrupt_image_bytes_raise_data_error_naming_the_file(tmp_path, digits, fmt, cut, flips):
    """A real digit in six formats, cut short and/or with bytes changed: an image or a DataError, nothing else."""
    x, _ = digits
    data = bytearray(png_bytes(np.stack([np.kron(x[7], np.ones((2, 2), np.uint8))] * 3, -1), fmt[0]))
    for where, value in flips:
        data[int(where * len(data))] = value
    p = tmp_path / f"img{fmt[1]}"
    p.write_bytes(bytes(data[: int(cut * len(data))] if cut < 1 else data))
    try:
        arr = read_image_files([p])
    except DataError as e:
        assert str(p) in str(e)
    else:
        assert arr.dtype == np.uint8 and arr.shape[0] == 1


@props(120)
@given(
    which=st.sampled_from(["idx", "kdd"]),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=3),
)
def test_damaged_gzip_data_files_raise_data_error(tmp_path, data_dir, which, cut, flips):
    """The loaders behind the checksum: damage inside the deflate stream is a DataError, not a zlib.error."""
    if which == "idx":
        data = bytearray((data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())
        reader = read_idx
    else:
        with gzip.open(data_dir / "kddcup99" / "kddcup.data_10_percent.gz", "rb") as f:
            data = bytearray(gzip.compress(b"".join(next(f) for _ in range(40))))
        reader = read_kdd
    for where, value in flips:
        data[int(where * len(data))] = value
    p = tmp_path / "damaged.gz"
    p.write_bytes(bytes(data[: int(cut * len(data))] if cut < 1 else data))
    try:
        reader(p)
    except DataError as e:
        assert str(p) in str(e)


@props(120)
@given(
    cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=3)
)
def test_damaged_npy_arrays_raise_data_error(tmp_path, digits, cut, flips):
    x, _ = digits
    buf = io.BytesIO()
    np.save(buf, x[:6])
    data = bytearray(buf.getvalue())
    for where, value in flips:
        data[int(where * len(data))] = value
    p = tmp_path / "arr.npy"
    p.write_bytes(bytes(data[: int(cut * len(data))] if cut < 1 else data))
    try:
        arr = read_npy(p)
    except DataError as e:
        assert str(p) in str(e)
    else:
        assert arr.ndim >= 2


# == 6. no silent overwrite ==================================================================
def test_score_maps_and_outputs_are_never_replaced_without_overwrite(tmp_path, image_run, digit_pngs):
    folder = digit_pngs(2)
    maps = tmp_path / "maps"
    maps.mkdir()
    (maps / "d1_map.png").write_bytes(b"my own picture")
    err = one_line_error("score", str(image_run), str(folder), "--maps", str(maps), "-q")
    assert "d1_map.png" in err and "--overwrite" in err
    assert (maps / "d1_map.png").read_bytes() == b"my own picture"
    assert ganad_main("score", str(image_run), str(folder), "--maps", str(maps), "--overwrite", "-q")[0] == 0
    assert (maps / "d1_map.png").read_bytes().startswith(b"\x89PNG")


def test_score_maps_of_same_named_files_in_sub_folders_are_kept_apart(tmp_path, image_run, digit_pngs):
    """a/d0.png and b/d0.png: each map is named after its path inside the input folder, neither replaces the other."""
    a, b = digit_pngs(2, "imgs/a"), digit_pngs(2, "imgs/b", first=5)
    maps = tmp_path / "maps"
    assert ganad_main("score", str(image_run), str(tmp_path / "imgs"), "--maps", str(maps), "-q")[0] == 0
    names = ["a__d0_map.png", "a__d1_map.png", "b__d0_map.png", "b__d1_map.png"]
    assert sorted(p.name for p in maps.iterdir()) == names
    assert (maps / "a__d0_map.png").read_bytes() != (maps / "b__d0_map.png").read_bytes()
    # the same two folders given as two inputs: both d0.png would be d0_map.png, refused before any map is drawn
    err = one_line_error("score", str(image_run), str(a), str(b), "--maps", str(tmp_path / "maps2"), "-q")
    assert str(a / "d0.png") in err and str(b / "d0.png") in err and "d0_map.png" in err
    assert not (tmp_path / "maps2").exists() or not any((tmp_path / "maps2").iterdir())


def test_train_into_a_file_or_a_foreign_folder_is_refused(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    quick = ["train", "--dataset", "digits", "--image-size", "16", "--max-train", "64", "--epochs", "1", "-q"]
    assert "is a file" in one_line_error(*quick, "--out", str(f))
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("mine")
    assert "not a ganad run folder" in one_line_error(*quick, "--out", str(d), "--overwrite")
    assert f.read_text() == "mine" and (d / "notes.txt").read_text() == "mine"


def test_overwrite_never_deletes_a_project_folder_that_happens_to_hold_a_config_yaml(tmp_path):
    """Issue 18.1: only a folder holding ganad's run files and nothing else may be replaced."""
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "config.yaml").write_text("lr: 0.1\n")
    (proj / "thesis.tex").write_text("keep")
    quick = ["train", "--dataset", "digits", "--image-size", "8", "--max-train", "64", "--epochs", "1", "-q"]
    err = one_line_error(*quick, "--out", str(proj), "--overwrite")
    assert "src/" in err and "thesis.tex" in err and "refusing to overwrite" in err
    assert (proj / "thesis.tex").read_text() == "keep" and (proj / "src").is_dir()
    assert (proj / "config.yaml").read_text() == "lr: 0.1\n"
    run_dir = tmp_path / "run"  # a real run folder, with a killed writer's temporary file, is replaced
    assert ganad_main(*quick, "--out", str(run_dir))[0] == 0
    (run_dir / ".metrics.json.abcd1234.tmp").write_bytes(b"half")
    assert ganad_main(*quick, "--out", str(run_dir), "--overwrite")[0] == 0
    assert (run_dir / METRICS).is_file() and not list(run_dir.glob("*.tmp"))


def test_resume_cleans_only_its_own_temporary_files_and_files_get_the_umask_mode(tmp_path):
    """Issue 18.10: a user's '.notes.abcd1234.tmp' looks like a temporary file but is not ganad's."""
    mine, ours = tmp_path / ".notes.abcd1234.tmp", tmp_path / ".metrics.json.abcd1234.tmp"
    mine.write_text("keep")
    ours.write_text("half")
    assert checkpoint.remove_stale_temps(tmp_path, RUN_FILES) == [ours]
    assert mine.read_text() == "keep"
    old = os.umask(0o022)
    try:
        atomic.atomic_write_bytes(tmp_path / "a.json", b"{}")
        os.umask(0o077)
        atomic.atomic_write_bytes(tmp_path / "b.json", b"{}")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644  # what open() gives: log.jsonl's mode
    assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o600


def test_results_and_report_outputs_are_never_replaced_without_overwrite(tmp_path):
    root = tmp_path / "res"
    store.append(
        root,
        {
            "trial": "t",
            "status": "ok",
            "model": "ganomaly",
            "dataset": "digits",
            "protocol": "p",
            "cls": 0,
            "metrics": {"auroc": 0.9},
        },
    )
    out = tmp_path / "summary.md"
    out.write_text("my notes")
    assert "--overwrite" in one_line_error("results", str(root), "--output", str(out))
    assert out.read_text() == "my notes"
    assert ganad_main("results", str(root), "--output", str(out), "--overwrite")[0] == 0
    assert out.read_text().startswith("### ")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    assert "--overwrite" in one_line_error("report", str(root), "--out", str(mine), "--no-images")
    assert (mine / "notes.txt").read_text() == "my notes"


# == issue 18: reliability, round two ==========================================================
QUICK = ["train", "--dataset", "digits", "--image-size", "8", "--max-train", "64", "--epochs", "1", "-q"]


def test_a_float_images_scale_is_fixed_at_fit_never_read_from_its_neighbours(saved, digits):
    """18.2: one pixel at 1.0001 used to rescale a whole .npy chunk (and a dark 0-255 image beside a bright one)."""
    det, path, _ = saved
    x = digits[0][:6].astype(np.float32) / 255  # floats in [0, 1]: the model's range (fitted on uint8)
    alone = det.decision_function(x[:1])
    bright = np.concatenate([x[:1], np.ones_like(x[:1])])
    assert det.decision_function(bright)[0] == alone[0]
    assert np.array_equal(det.decision_function(x), ganad.load(path).decision_function(x))
    over = x.copy()
    over[4, 0, 0] = 1.0001
    with pytest.raises(DataError, match=r"X\[4\] has values in .*\[0, 1\]"):
        det.decision_function(over)  # refused, naming the sample: not the other five silently rescaled
    # a model fitted on 0-255 floats reads 0-255 floats, saved with it
    x255 = digits[0][digits[1] == 3][:40].astype(np.float32)
    wide = ganad.GANomaly(epochs=1, batch_size=16, image_size=8, nz=8, verbose=False).fit(x255)
    assert wide.preprocessor_.float_range == 255.0
    assert np.array_equal(wide.decision_function(x255[:3]), wide.decision_function(x255[:3].astype(np.uint8)))
    wide.save(path.parent / "wide")
    assert ganad.load(path.parent / "wide").preprocessor_.float_range == 255.0


MEMORY_CAP = textwrap.dedent(
    """
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    import numpy as np, ganad
    from ganad.errors import ResourceError
    from ganad.cli import main
    x = np.random.default_rng(0).integers(0, 256, (4, 8, 8), dtype=np.uint8)
    try:
        ganad.GANomaly(image_size=1024, verbose=False).fit(x)
        print("trained")
    except ResourceError as e:
        print("api:", e)
    sys.exit(main(["train", "--dataset", "digits", "--image-size", "2048", "--out", sys.argv[1], "-q"]))
    """
)


def test_image_sizes_that_cannot_fit_are_refused_before_anything_is_allocated(tmp_path):
    """18.3: sizes chosen by the user are estimated first; the kernel's OOM killer never gets the chance."""
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_CAP, str(tmp_path / "run")], capture_output=True, text=True, timeout=300
    )
    assert proc.stdout.startswith("api: training ganomaly, input 1x1024x1024"), proc.stdout + proc.stderr
    assert "needs about" in proc.stdout and "--image-size" in proc.stdout
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert re.search(r"preparing \d+ images at 2048x2048 .* needs about", proc.stderr) and "--image-size" in proc.stderr
    for bad in (-1, 0, (16,), "big", 100000):
        with pytest.raises(GanadError, match="image_size"):
            ganad.GANomaly(image_size=bad, verbose=False).fit(np.zeros((4, 8, 8), np.uint8))


def test_image_folders_must_not_overlap_and_links_are_followed_alike(tmp_path, digit_pngs):
    """18.4: a test folder inside the training folder trained on the anomalies; linked folders were skipped."""
    data = tmp_path / "data"
    digit_pngs(12, "data/good")
    digit_pngs(4, "data/eval/normal", first=20)
    digit_pngs(4, "data/eval/anomalous", first=40)
    args = ["train", "--dataset", "folder", "--image-size", "8", "--epochs", "1", "-q"]
    args += ["--test-dir", str(data / "eval")]
    err = one_line_error(*args, "--train-dir", str(data), "--out", str(tmp_path / "r"))
    assert "lies inside" in err and not (tmp_path / "r").exists()
    train_dir = tmp_path / "train"
    digit_pngs(10, "train/a", first=60)
    (train_dir / "linked").symlink_to(data / "good", target_is_directory=True)  # a linked folder is read
    (train_dir / "one.png").symlink_to(data / "good" / "d0.png")  # and a linked file, as before
    assert ganad_main(*args, "--train-dir", str(train_dir), "--out", str(tmp_path / "r"))[0] == 0
    split = json.loads((tmp_path / "r" / METRICS).read_text())["split"]
    ev = data / "eval"
    assert split["images_read"] == {str(train_dir): 23, str(ev / "normal"): 4, str(ev / "anomalous"): 4}
    (data / "eval" / "normal" / "dup.png").symlink_to(data / "good" / "d3.png")  # the same picture on both sides
    err = one_line_error(*args, "--train-dir", str(data / "good"), "--out", str(tmp_path / "r2"))
    assert "both a training image" in err and "d3.png" in err


@pytest.mark.parametrize(
    "flags,field",
    [
        (["--seed", "-1"], "seed"),
        (["--seed", "100000000000000000000000"], "seed"),
        (["--max-train", "-5"], "max_train"),
        (["--max-test", "-5"], "max_test"),
        (["--image-size", "-4"], "image_size"),
        (["--image-size", "0"], "image_size"),
        (["--set", "lr=-1"], "ganomaly.lr"),
        (["--set", "beta1=5"], "ganomaly.beta1"),
        (["--set", "lr=nan"], "ganomaly.lr"),
        (["--device", "mps"], "mps"),
    ],
)
def test_bad_run_settings_are_one_line_before_any_folder_is_made(tmp_path, flags, field):
    """18.5 and 18.8: each used to be a traceback, an ignored value, or a folder holding only config.yaml."""
    out = tmp_path / "run"
    err = one_line_error(*QUICK, *flags, "--out", str(out))
    assert field in err
    assert not out.exists()


@pytest.mark.parametrize(
    "kwargs",
    [dict(epochs="abc"), dict(batch_size=2.5), dict(lr=-1), dict(seed=-3), dict(contamination="x"), dict(steps=0)],
)
def test_bad_api_parameters_are_one_config_error(digits, kwargs):
    with pytest.raises(GanadError, match=next(iter(kwargs))):
        ganad.GANomaly(verbose=False, **kwargs).fit(digits[0][:20])


def test_labels_as_strings_are_refused(digits):
    x = digits[0][:20]
    with pytest.raises(DataError, match="y_val has dtype"):
        ganad.GANomaly(epochs=1, verbose=False).fit(x, X_val=x, y_val=["normal"] * 20)


def test_model_json_nested_too_deep_or_with_a_huge_integer_is_a_checkpoint_error(saved, tmp_path):
    _, path, _ = saved
    for name, text in (("deep", "[" * 100_000 + "]" * 100_000), ("digits", '{"format": ' + "9" * 5000 + "}")):
        d = tmp_path / name
        shutil.copytree(path, d)
        (d / "model.json").write_text(text)
        with pytest.raises(CheckpointError, match=r"model\.json"):
            ganad.load(d)


def test_the_weights_checksum_is_required(saved, tmp_path):
    """18.10: deleting tensors_sha256 from model.json used to turn the weights check off."""
    _, path, _ = saved
    d = tmp_path / "m"
    shutil.copytree(path, d)
    meta = json.loads((d / "model.json").read_text())
    del meta["tensors_sha256"]
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="tensors_sha256"):
        ganad.load(d)


def test_nan_scores_are_an_error_not_a_normal_prediction(tmp_path):
    """18.10: NaN > threshold is False, so a NaN score was predicted normal without a word."""
    rng = np.random.default_rng(0)
    det = ganad.GANomaly(epochs=1, batch_size=16, nz=4, row_scaling="none", verbose=False)
    det.fit(rng.normal(size=(64, 5)).astype(np.float32))
    x = rng.normal(size=(3, 5)).astype(np.float32)
    x[1] = 3e38  # finite input whose activations overflow to inf, then NaN
    with pytest.raises(TrainingError, match="sample 1"):
        det.predict(x)


def _csv_of_width(path: Path, ncol: int) -> Path:
    header = [f"c{i}" for i in range(ncol)] + ["label"]
    rows = [",".join(["1"] * ncol + ["ok" if r % 4 else "attack"]) for r in range(20)]
    path.write_text(",".join(header) + "\n" + "\n".join(rows) + "\n")
    return path


def test_wide_csv_headers_load_in_linear_time_and_identifier_columns_are_refused(tmp_path):
    """18.6: 16k columns took 55 s (quadratic header handling); a unique-ID column became 5,000 one-hot columns."""

    def seconds(ncol: int) -> float:
        p = _csv_of_width(tmp_path / f"w{ncol}.csv", ncol)
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            load_csv(p, "label", "attack")
            best = min(best, time.perf_counter() - t0)
        return best

    # 4x the columns: about 4x the time when linear, 16x when quadratic (a ratio, not a timing target)
    assert seconds(16000) / seconds(4000) < 9
    rows = [f"id{i},{i % 7},{'attack' if i % 5 == 0 else 'ok'}" for i in range(300)]
    p = tmp_path / "ids.csv"
    p.write_text("session,count,label\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match="column 'session' holds 300 different text values"):
        load_csv(p, "label", "attack")


def test_report_writes_atomically_never_through_a_link_and_never_over_a_users_report(tmp_path):
    """18.7: a report.md linked to another file was overwritten through the link."""
    from ganad.bench.report import write_report

    root = tmp_path / "res"
    store.append(
        root,
        {
            "trial": "t",
            "state": "done",
            "grid": "g",
            "budget": "quick",
            "model": "ganomaly",
            "dataset": "digits",
            "protocol": "one-class-anomalous",
            "cls": 0,
            "seed": 0,
            "metrics": {"auroc": 0.8, "auprc": 0.5},
            "config": {},
        },
    )
    out = root / "report"
    write_report(root, out, images=False)
    elsewhere = tmp_path / "notes.md"
    elsewhere.write_text("mine")
    (out / "report.md").unlink()
    (out / "report.md").symlink_to(elsewhere)
    write_report(root, out, images=False)
    assert elsewhere.read_text() == "mine" and not (out / "report.md").is_symlink()
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "report.md").write_text("my own report")
    with pytest.raises(GanadError, match=r"report\.md"):
        write_report(root, theirs, overwrite=True, images=False)
    assert (theirs / "report.md").read_text() == "my own report"


def test_split_sizes_are_what_was_trained_and_scored(tmp_path):
    """18.8: --max-test 100 recorded the size before subsampling."""
    assert ganad_main(*QUICK, "--max-test", "100", "--out", str(tmp_path / "r"))[0] == 0
    split = json.loads((tmp_path / "r" / METRICS).read_text())["split"]
    scored = len((tmp_path / "r" / "scores.csv").read_text().splitlines()) - 1
    assert split["sizes"]["test"] == scored == 100 and split["sizes"]["train"] == 64
    assert split["sizes_before_subsampling"]["test"] > 100


def test_scoring_skips_a_fifo_named_like_an_image_and_configs_refuse_yaml_aliases(tmp_path, image_run, digit_pngs):
    """18.9: a FIFO named x.png blocked `ganad score` for ever; a YAML alias bomb ran 50 s into a MemoryError."""
    folder = digit_pngs(3, "imgs")
    os.mkfifo(folder / "pipe.png")
    proc = subprocess.run(
        [sys.executable, "-m", "ganad.cli", "score", str(image_run), str(folder), "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "pipe.png" not in proc.stdout and proc.stdout.count("d") >= 3
    run = tmp_path / "bomb"
    shutil.copytree(image_run, run)
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
        f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    (run / "config.yaml").write_text(bomb + "model: ganomaly\n")
    err = one_line_error_in_a_process("evaluate", str(run))
    assert "aliases" in err and "config.yaml" in err


def test_a_resume_runs_at_the_thread_count_its_run_started_with(tmp_path, digits):
    """18.11: a resume under another --threads silently changed the result; the count is recorded and reused."""
    from ganad import engine
    from ganad.data.types import InputSpec
    from ganad.models.ganomaly import GANomaly

    x = (digits[0][:96, None].astype(np.float32) / 127.5) - 1
    spec = InputSpec("image", (1, 8, 8))

    def model() -> GANomaly:
        torch.manual_seed(0)
        return GANomaly(spec, nz=8, width=8)

    before = torch.get_num_threads()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    try:
        torch.set_num_threads(1)
        whole = model()
        engine.fit(whole, x, engine.TrainOptions(epochs=2, batch_size=32, progress=False), run_dir=tmp_path / "a")
        part = model()
        engine.fit(part, x, engine.TrainOptions(epochs=1, batch_size=32, progress=False), run_dir=tmp_path / "b")
        assert checkpoint.read_meta(tmp_path / "b" / "checkpoint.safetensors")["fit"]["state"]["threads"] == 1
        torch.set_num_threads(2)
        resumed = model()
        opts = engine.TrainOptions(epochs=2, batch_size=32, progress=False)
        fit = engine.fit(resumed, x, opts, run_dir=tmp_path / "b", resume=True)
        assert fit.threads == 1 and torch.get_num_threads() == 2  # ran at 1, the caller's 2 restored after
    finally:
        torch.set_num_threads(before)
    for (k, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


@props(25)
@given(
    values=st.lists(st.one_of(st.floats(-0.5, 300), st.sampled_from([np.nan, np.inf])), min_size=1, max_size=4),
    which=st.integers(0, 3),
)
def test_any_float_image_batch_is_refused_or_scored_as_each_image_alone(saved, digits, values, which):
    """Property for 18.2: a batch of float images is either refused naming a sample, or each score equals its own."""
    det = saved[0]
    x = digits[0][:4].astype(np.float64) / 255
    for i, v in enumerate(values):  # odd pixels in some of the images
        x[(which + i) % 4, 0, i] = v
    try:
        together = det.decision_function(x)
    except DataError as e:
        assert re.search(r"X\[\d\]", str(e)), str(e)
        return
    alone = np.array([det.decision_function(x[i : i + 1])[0] for i in range(4)])
    assert np.array_equal(together, alone)
