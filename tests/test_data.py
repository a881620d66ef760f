"""Loaders on the real files, downloads, and protocol invariants."""

from __future__ import annotations

import contextlib
import gzip
import http.server
import io
import re
import tarfile
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganad.cli import main
from ganad.data import download as dl
from ganad.data import (
    load_csv,
    load_image_folder,
    load_labelled_image_folder,
    load_source,
    make_split,
    read_image_files,
)
from ganad.data.sources import load_mvtec, read_cifar_binary, read_npy
from ganad.errors import DataError

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.fixture(scope="session")
def mnist(data_dir):
    return load_source("mnist", data_dir=str(data_dir), download=False)


@pytest.fixture(scope="session")
def kdd(data_dir):
    return load_source("kdd99", data_dir=str(data_dir), download=False)


# -- sources --------------------------------------------------------------------
def test_mnist_shapes_and_label_counts(mnist):
    assert mnist.train.x.shape == (60000, 1, 28, 28) and mnist.train.x.dtype == np.uint8
    assert mnist.test.x.shape == (10000, 1, 28, 28)
    assert np.bincount(mnist.train.y).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(mnist.test.y).sum() == 10000


def test_kdd_parsed_arrays_are_cached_by_file_checksum(data_dir, tmp_path):
    from ganad.data.sources import read_kdd

    with gzip.open(data_dir / "kddcup99" / "kddcup.data_10_percent.gz", "rt") as f:
        lines = [next(f) for _ in range(3000)]  # real rows, a small file: the test stays fast
    small = tmp_path / "kdd.gz"
    small.write_bytes(gzip.compress("".join(lines).encode()))
    cache = tmp_path / "cache"
    first = read_kdd(small, cache=cache)
    (cached,) = (cache / "parsed").glob("kdd99-*.npz")
    again = read_kdd(small, cache=cache)  # from the cache
    assert np.array_equal(again.train.x, first.train.x) and np.array_equal(again.train.y, first.train.y)
    assert again.class_names == first.class_names and again.feature_names == first.feature_names
    cached.write_bytes(b"damaged")  # a damaged cache is parsed over, never trusted
    assert np.array_equal(read_kdd(small, cache=cache).train.x, first.train.x)
    small.write_bytes(gzip.compress("".join(lines[:1000]).encode()))  # another file: another key
    assert len(read_kdd(small, cache=cache).train) == 1000
    assert len(list((cache / "parsed").glob("kdd99-*.npz"))) == 2


def test_fashion_mnist_is_a_drop_in(data_dir):
    f = load_source("fashion-mnist", data_dir=str(data_dir), download=False)
    assert f.train.x.shape == (60000, 1, 28, 28) and len(f.class_names) == 10
    assert np.bincount(f.train.y).tolist() == [6000] * 10


def test_kdd_encoding_matches_egbad_width(kdd):
    # EGBAD one-hot encodes 7 columns (incl. the binary ones) -> 121 features on the 10 % file
    assert kdd.train.x.shape == (494021, 121) and kdd.train.x.dtype == np.float32
    assert int((kdd.train.y == kdd.class_names.index("normal.")).sum()) == 97278
    assert len(kdd.class_names) == 23
    onehot = [n for n in kdd.feature_names if "-" in n]
    assert len(onehot) == 87
    assert kdd.train.x[:, [kdd.feature_names.index(n) for n in onehot]].sum(axis=1).tolist() == [7.0] * 494021


def test_cifar_binary_reader_on_a_written_archive(tmp_path):
    """CIFAR-10 cannot be brought here: write the exact binary layout and read it back."""
    rng = np.random.default_rng(0)
    path = tmp_path / "cifar-10-binary.tar.gz"
    expected = {}
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            labels = rng.integers(0, 10, 4, dtype=np.uint8)
            pixels = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
            expected[name] = (labels, pixels)
            data = np.concatenate([labels[:, None], pixels], axis=1).tobytes()
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    src = read_cifar_binary(path)
    assert src.train.x.shape == (20, 3, 32, 32) and src.test.x.shape == (4, 3, 32, 32)
    lab, pix = expected["test_batch.bin"]
    assert src.test.y.tolist() == lab.tolist()
    np.testing.assert_array_equal(src.test.x[1, 2].ravel(), pix[1, 2048:])  # blue plane of image 1
    truncated = tmp_path / "trunc.tar.gz"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=r"trunc\.tar\.gz"):
        read_cifar_binary(truncated)


def test_digits_ship_offline():
    d = load_source("digits")
    assert d.train.x.shape == (1797, 1, 8, 8) and d.train.x.max() == 255 and d.test is None


def test_unknown_dataset_lists_choices():
    with pytest.raises(DataError, match="mnist"):
        load_source("mnsit")


# -- downloads ------------------------------------------------------------------
def test_offline_checksum_is_verified(data_dir):
    p = dl.resolve_file("mnist", "t10k-labels-idx1-ubyte.gz", data_dir, download=False)
    assert dl.md5sum(p) == "ec29112dd5afa0611ce80d1b7f02629c"


def test_missing_file_without_network_names_file_and_place(tmp_path, monkeypatch):
    monkeypatch.setattr(
        dl,
        "REGISTRY",
        {
            **dl.REGISTRY,
            "mnist": (
                "mnist",
                tuple(
                    dl.RemoteFile(f.name, f.md5, ("http://127.0.0.1:9/" + f.name,), f.size)
                    for f in dl.REGISTRY["mnist"][1]
                ),
            ),
        },
    )
    with pytest.raises(DataError) as e:
        dl.resolve_file("mnist", "t10k-labels-idx1-ubyte.gz", tmp_path / "offline", cache=tmp_path / "cache")
    msg = str(e.value)
    assert "t10k-labels-idx1-ubyte.gz" in msg and str(tmp_path / "offline" / "mnist") in msg


@contextlib.contextmanager
def _serving(handler) -> Iterator[str]:
    """A local HTTP server on a free port, its base URL; shut down even when the test fails."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that keeps the test output clean (no access log on stderr)."""

    def log_message(self, *a) -> None:
        pass


@pytest.fixture()
def http_root(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    with _serving(handler) as url:
        yield root, url


def test_download_verifies_and_caches(http_root, tmp_path, data_dir, monkeypatch):
    root, url = http_root
    real = (data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (root / "good.gz").write_bytes(real)
    (root / "bad.gz").write_bytes(real[:-10])  # truncated
    rf = dl.RemoteFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", (url + "bad.gz",), len(real))
    monkeypatch.setattr(dl, "REGISTRY", {"mnist": ("mnist", (rf,))})
    monkeypatch.delenv("GANAD_DATA_DIR", raising=False)  # force the download path
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="truncated"):
        dl.resolve_file("mnist", rf.name, cache=cache)
    assert list((cache / "mnist").iterdir()) == []  # nothing, not even a temp file, is left behind
    rf2 = dl.RemoteFile(rf.name, rf.md5, (url + "bad.gz", url + "good.gz"), len(real))
    monkeypatch.setattr(dl, "REGISTRY", {"mnist": ("mnist", (rf2,))})
    path = dl.resolve_file("mnist", rf.name, cache=cache)  # falls back to the mirror
    assert path == cache / "mnist" / rf.name and path.read_bytes() == real


def _serve_mnist_labels(monkeypatch, url: str) -> dl.RemoteFile:
    """MNIST's test labels (published md5 and size) to be fetched from ``url`` only."""
    rf = dl.RemoteFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", (url,), 4542)
    monkeypatch.setattr(dl, "REGISTRY", {"mnist": ("mnist", (rf,))})
    monkeypatch.delenv("GANAD_DATA_DIR", raising=False)  # force the download path
    return rf


def test_download_with_the_wrong_checksum_is_rejected_and_never_cached(http_root, tmp_path, data_dir, monkeypatch):
    """Same size, one byte changed: only the md5 can tell; the message says what to do."""
    root, url = http_root
    real = bytearray((data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())
    real[100] ^= 0xFF
    (root / "evil.gz").write_bytes(bytes(real))
    rf = _serve_mnist_labels(monkeypatch, url + "evil.gz")
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as e:
        dl.resolve_file("mnist", rf.name, cache=cache)
    msg = str(e.value)
    assert "does not match the published ec29112dd5afa0611ce80d1b7f02629c" in msg
    assert "Nothing was written to the cache" in msg and "put it at" in msg
    assert list((cache / "mnist").iterdir()) == []


def test_a_connection_closed_early_is_a_truncated_download(tmp_path, data_dir, monkeypatch):
    """The server promises the whole file and hangs up halfway: named as such, nothing cached."""
    real = (data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()

    class HalfHandler(_QuietHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(real)))
            self.end_headers()
            self.wfile.write(real[: len(real) // 2])
            self.close_connection = True

    with _serving(HalfHandler) as url:
        rf = _serve_mnist_labels(monkeypatch, url + "f.gz")
        cache = tmp_path / "cache"
        with pytest.raises(DataError, match=f"connection closed after {len(real) // 2} of {len(real)} bytes"):
            dl.resolve_file("mnist", rf.name, cache=cache)
        assert list((cache / "mnist").iterdir()) == []


def test_a_download_is_written_under_a_temporary_name_then_renamed(tmp_path, data_dir, monkeypatch):
    """Mid-download the cache holds only a hidden .part file; the final name appears whole, at once."""
    real = (data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()
    halfway, go_on = threading.Event(), threading.Event()

    class SlowHandler(_QuietHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(real)))
            self.end_headers()
            self.wfile.write(real[:2000])
            self.wfile.flush()
            halfway.set()
            go_on.wait(30)
            self.wfile.write(real[2000:])

    with _serving(SlowHandler) as url, contextlib.ExitStack() as release:
        release.callback(go_on.set)  # the handler must not hang on after a failure (runs before the shutdown)
        rf = _serve_mnist_labels(monkeypatch, url + "f.gz")
        cache = tmp_path / "cache"
        result: list = []
        worker = threading.Thread(target=lambda: result.append(dl.resolve_file("mnist", rf.name, cache=cache)))
        worker.start()
        assert halfway.wait(30)
        final = cache / "mnist" / rf.name
        deadline = time.time() + 30
        while time.time() < deadline and not any(p.name.endswith(".part") for p in (cache / "mnist").iterdir()):
            time.sleep(0.01)
        parts = [p for p in (cache / "mnist").iterdir()]
        assert [p.name.startswith(f".{rf.name}.") and p.name.endswith(".part") for p in parts] == [True]
        assert not final.exists(), "the final name must not exist before the file is complete and verified"
        go_on.set()
        worker.join(30)
        assert result == [final] and final.read_bytes() == real
        assert [p.name for p in (cache / "mnist").iterdir()] == [rf.name], "the temporary file was renamed"


def test_a_damaged_file_already_in_place_says_what_to_do(tmp_path, data_dir):
    offline = tmp_path / "offline" / "mnist"
    offline.mkdir(parents=True)
    real = (data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (offline / "t10k-labels-idx1-ubyte.gz").write_bytes(real[:-1])
    with pytest.raises(DataError) as e:
        dl.resolve_file("mnist", "t10k-labels-idx1-ubyte.gz", tmp_path / "offline", download=False)
    msg = str(e.value)
    assert str(offline / "t10k-labels-idx1-ubyte.gz") in msg and "4541 bytes, expected 4542" in msg
    assert "ganad datasets download mnist" in msg


# -- image folders ----------------------------------------------------------------
def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_image_folders_grey_rgb_resize(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        _png(tmp_path / "train" / f"{i}.png", rng.integers(0, 255, (20, 30), dtype=np.uint8))
    _png(tmp_path / "eval" / "normal" / "a.png", rng.integers(0, 255, (20, 30), dtype=np.uint8))
    _png(tmp_path / "eval" / "anomalous" / "b.jpg", rng.integers(0, 255, (40, 40), dtype=np.uint8))
    tr = load_image_folder(tmp_path / "train")
    assert tr.train.x.shape == (3, 1, 20, 30)
    ev = load_labelled_image_folder(tmp_path / "eval", size=(20, 30))
    assert ev.train.x.shape == (2, 1, 20, 30) and ev.train.y.tolist() == [0, 1]
    with pytest.raises(DataError, match="mixed sizes"):
        load_labelled_image_folder(tmp_path / "eval")
    _png(tmp_path / "train" / "rgb.png", rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    with pytest.raises(DataError, match="mixed channels"):
        load_image_folder(tmp_path / "train")
    assert load_image_folder(tmp_path / "train", channels=3).train.x.shape == (4, 3, 20, 30)


def test_bad_image_folders_name_the_culprit(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        load_image_folder(tmp_path / "empty")
    with pytest.raises(DataError, match="not found"):
        load_image_folder(tmp_path / "missing")
    bad = tmp_path / "bad" / "broken.png"
    bad.parent.mkdir()
    buf = io.BytesIO()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(buf, format="PNG")
    bad.write_bytes(buf.getvalue()[:40])
    with pytest.raises(DataError, match=r"broken\.png"):
        read_image_files([bad])
    (tmp_path / "eval2" / "normal").mkdir(parents=True)
    with pytest.raises(DataError, match="anomalous"):
        load_labelled_image_folder(tmp_path / "eval2")


def test_grey_images_with_alpha_16_bits_or_a_palette_are_read_as_grey(tmp_path, mnist):
    digit = mnist.test.x[0, 0]
    Image.fromarray(digit).convert("LA").save(tmp_path / "la.png")
    Image.fromarray(digit.astype(np.uint16) * 257).save(tmp_path / "deep.png")  # a 16-bit scan
    Image.fromarray(digit).convert("P").save(tmp_path / "grey_palette.png")
    Image.fromarray(digit).save(tmp_path / "plain.png")
    x = read_image_files(sorted(tmp_path.glob("*.png")))
    assert x.shape == (4, 1, 28, 28)
    for img in x:  # the same digit each time: no clipping of 16-bit values at 255, no colour guess
        np.testing.assert_array_equal(img[0], digit)
    colour = tmp_path / "colour"
    colour.mkdir()
    rgb = np.zeros((28, 28, 3), np.uint8)  # black ...
    rgb[10:20] = 255  # ... white ...
    rgb[20:, :, 0] = 255  # ... and red: per-channel extrema as a grey image's, yet colour
    Image.fromarray(rgb).convert("P").save(colour / "black_white_red.png")
    assert read_image_files([colour / "black_white_red.png"]).shape == (1, 3, 28, 28)


def test_an_image_too_large_to_decode_safely_is_a_data_error(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # PIL refuses beyond twice this
    p = tmp_path / "big.png"
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(p)
    with pytest.raises(DataError, match=r"big\.png: image too large"):
        read_image_files([p])


def test_npy_files_that_are_not_one_array_name_the_file(tmp_path):
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 2)), b=np.ones(3))
    (tmp_path / "two.npy").write_bytes((tmp_path / "two.npz").read_bytes())
    with pytest.raises(DataError, match=r"two\.npy: not a single \.npy array"):
        read_npy(tmp_path / "two.npy")
    np.save(tmp_path / "flat.npy", np.zeros(5))
    with pytest.raises(DataError, match=r"flat\.npy: array of shape \(5,\)"):
        read_npy(tmp_path / "flat.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"obj\.npy"):
        read_npy(tmp_path / "obj.npy")


# -- CSV ----------------------------------------------------------------------------
def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_numeric_and_categorical(tmp_path):
    p = _csv(tmp_path / "a.csv", "x,proto,label\n1.5,tcp,ok\n2,udp,bad\n3,tcp,ok\n")
    src = load_csv(p, "label", "bad")
    assert src.train.x.tolist() == [[1.5, 1, 0], [2, 0, 1], [3, 1, 0]]
    assert src.train.y.tolist() == [0, 1, 0]
    q = _csv(tmp_path / "b.csv", "label,proto,x\nok,udp,7\n")  # other column order, same encoding
    assert load_csv(q, "label", "bad", like=src).train.x.tolist() == [[7, 0, 1]]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("x,label\n1,ok\nabc,ok\n3,ok\n", "row 3, column 'x'"),
        ("x,label\n1,ok\nnan,ok\n", "row 3, column 'x'"),
        ("x,label\n1,ok\ninf,ok\n", "row 3, column 'x'"),
        ("x,label\n1,ok\n,ok\n", "empty cell"),
        ("x,x,label\n1,2,ok\n", "duplicate column"),
        ("x,y\n1,2\n", "label column 'label' not found"),
        ("x,label\n1,bad\n", "no normal rows"),
        ("x,label\n1,ok,3\n", "row 2 has 3 fields"),
        ("", "empty file"),
        ("x,label\n", "header only"),
        ("label\nok\nbad\n", "no feature columns"),
        ("x,,label\n1,2,ok\n", "empty column name at position"),
        ("x,label\n1,ok\n2,\n", "row 3, column 'label': empty label"),
        ("x,label\n1,ok\n1e39,ok\n", "row 3, column 'x': '1e39' does not fit a 32-bit float"),
        ("x,label\n\n1,ok\n\n\nz,ok\n4,ok\n", "row 6, column 'x'"),  # blank lines count
        ('x,note,label\n1,"two\nlines",ok\n2,b,ok\n3,c,ok\nq,d,ok\n', "row 6, column 'x'"),  # so do quoted ones
        ('x,label\n1,ok\n"2,ok\n', "row"),
    ],
)
def test_bad_csv_names_row_and_column(tmp_path, text, needle):
    p = _csv(tmp_path / "bad.csv", text)
    with pytest.raises(DataError, match=needle) as e:
        load_csv(p, "label", "bad")
    assert "bad.csv" in str(e.value)


def test_bad_csv_files_name_the_file(tmp_path):
    with pytest.raises(DataError, match=r"nosuch\.csv: file not found"):
        load_csv(tmp_path / "nosuch.csv", "label", "bad")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(DataError, match=r"dir\.csv: not a file"):
        load_csv(tmp_path / "dir.csv", "label", "bad")
    (tmp_path / "latin.csv").write_bytes("x,label\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.csv: not a readable UTF-8 text file"):
        load_csv(tmp_path / "latin.csv", "label", "bad")


def test_a_test_csv_is_checked_against_the_training_csv(tmp_path):
    train = load_csv(_csv(tmp_path / "train.csv", "x,proto,label\n1,tcp,ok\n2,udp,bad\n3,tcp,ok\n"), "label", "bad")
    with pytest.raises(DataError, match=r"test\.csv: row 3, column 'label': label 'atack' is neither"):
        load_csv(_csv(tmp_path / "test.csv", "x,proto,label\n1,tcp,ok\n2,udp,atack\n"), "label", "bad", like=train)
    with pytest.raises(DataError, match=r"test\.csv: missing column\(s\): proto"):
        load_csv(_csv(tmp_path / "test.csv", "x,label\n1,ok\n"), "label", "bad", like=train)
    with pytest.raises(DataError, match=r"test\.csv: row 2, column 'proto': value 'icmp' was not seen in training"):
        load_csv(_csv(tmp_path / "test.csv", "x,proto,label\n1,icmp,ok\n"), "label", "bad", like=train)
    only_normal = load_csv(
        _csv(tmp_path / "test.csv", "x,proto,label\n1,tcp,ok\n2,udp,ok\n"), "label", "bad", like=train
    )
    with pytest.raises(DataError, match=r"test set holds no anomalous samples; no row has label == 'bad'"):
        make_split(train, "custom", test=only_normal)


def test_a_label_value_that_matches_nothing_is_reported_with_the_values_found(tmp_path):
    src = load_csv(_csv(tmp_path / "a.csv", "x,label\n" + "".join(f"{i},ok\n" for i in range(20))), "label", "Ok")
    with pytest.raises(
        DataError, match=r"a\.csv: the only CSV .* no row has label == 'Ok' \(labels in the training CSV: 'ok'\)"
    ):
        make_split(src, "csv-holdout")


# -- protocols ------------------------------------------------------------------------
def _source_ids(split, part):
    return set(split.description["index"][part])


@pytest.mark.parametrize("protocol", ["one-class-anomalous", "one-class-anomalous-ganomaly", "one-class-normal"])
def test_protocol_invariants(mnist, protocol):
    a = make_split(mnist, protocol, 3, seed=0)
    assert (a.train.y == 0).all(), "no anomaly in training"
    tr, va, te = (_source_ids(a, k) for k in ("train", "val", "test"))
    assert not (tr & va) and not (tr & te) and not (va & te), "parts are disjoint"
    assert set(np.unique(a.val.y)) == {0, 1} and set(np.unique(a.test.y)) == {0, 1}
    b = make_split(mnist, protocol, 3, seed=0)
    np.testing.assert_array_equal(a.train.x, b.train.x)
    np.testing.assert_array_equal(a.test.y, b.test.y)
    c = make_split(mnist, protocol, 3, seed=1)
    if protocol != "one-class-normal":  # one-class-normal's test set is the official one
        assert _source_ids(c, "test") != te
    assert _source_ids(c, "val") != va


def test_one_class_anomalous_ratios(mnist):
    s = make_split(mnist, "one-class-anomalous", 0, seed=0)
    n = 70000
    assert len(s.test) == n - int(0.8 * n)
    share = 6903 / n  # digit 0 in train + test
    assert s.test.y.mean() == pytest.approx(share, abs=0.01)
    assert s.val.y.mean() == pytest.approx(share, abs=0.015)


def test_one_class_normal_uses_official_sets(mnist):
    s = make_split(mnist, "one-class-normal", 7, seed=0)
    assert len(s.test) == 10000 and s.test.y.sum() == 10000 - (mnist.test.y == 7).sum()
    assert len(s.train) + int((s.val.y == 0).sum()) == 6265
    assert max(_source_ids(s, "val") | _source_ids(s, "train")) < 60000, "validation only from training images"


def test_kdd_protocol_follows_egbad(kdd):
    s = make_split(kdd, "kdd", seed=0)
    assert (s.train.y == 0).all()
    assert s.test.y.mean() == pytest.approx(0.2, abs=0.005)  # _adapt(rho=0.2)
    assert len(s.train) + len(s.val) + len(s.test) <= len(kdd.train)
    assert make_split(kdd, "kdd", seed=5).description["index"]["test"] == s.description["index"]["test"]


@pytest.mark.parametrize(
    ("cls", "protocol", "needle"),
    [
        (10, "one-class-anomalous", r"class 10 does not exist in mnist: choose 0\.\.9"),
        (-1, "one-class-normal", "class -1 does not exist"),
        (None, "one-class-normal", "give --class"),
        (0, "two-class", "unknown protocol"),
    ],
)
def test_bad_protocol_requests(mnist, cls, protocol, needle):
    with pytest.raises(DataError, match=needle):
        make_split(mnist, protocol, cls)


def test_gzip_idx_header_is_checked(tmp_path):
    from ganad.data.sources import read_idx

    p = tmp_path / "x.gz"
    p.write_bytes(gzip.compress(b"\x00\x00\x08\x04" + b"\x00" * 20))
    with pytest.raises(DataError, match="magic"):
        read_idx(p)


def test_mvtec_downloads_checks_its_sha256_unpacks_once_and_trains_without_data_dir(
    http_root, mvtec_tree, tmp_path, monkeypatch, capsys
):
    """Issue 20: `ganad datasets download mvtec` fetches the archive, checks the published sha256
    (MVTec publishes no md5), unpacks it into the cache and drops the cached archive; `ganad datasets`
    lists it and `--dataset mvtec --category` then needs no --data-dir. A synthetic archive in the
    MVTec layout stands in for the 4.9 GB one, served over HTTP like the real address."""
    import hashlib

    root, url = http_root
    tree = mvtec_tree()
    archive = root / "mvtec_anomaly_detection.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(tree / "widget", arcname="widget")
    data = archive.read_bytes()
    published = dl.REGISTRY["mvtec"][1][0]
    assert published.sha256 and published.md5 is None and published.unpack  # the real entry's shape
    monkeypatch.delenv("GANAD_DATA_DIR", raising=False)
    monkeypatch.setenv("GANAD_CACHE_DIR", str(tmp_path / "cache"))

    wrong = dl.RemoteFile(archive.name, None, (url + archive.name,), sha256="0" * 64, unpack=True)
    monkeypatch.setattr(dl, "REGISTRY", {"mvtec": ("mvtec", (wrong,))})
    with pytest.raises(DataError, match="sha256"):
        dl.download_dataset("mvtec")
    assert dl.unpacked_dir("mvtec") is None and not any((tmp_path / "cache" / "mvtec").iterdir())

    right = dl.RemoteFile(
        archive.name, None, (url + archive.name,), sha256=hashlib.sha256(data).hexdigest(), unpack=True
    )
    monkeypatch.setattr(dl, "REGISTRY", {"mvtec": ("mvtec", (right,))})
    assert main(["datasets", "download", "mvtec"]) == 0
    unpacked = tmp_path / "cache" / "mvtec"
    assert capsys.readouterr().out.strip() == str(unpacked)
    assert (unpacked / "widget" / "train" / "good").is_dir() and not (unpacked / archive.name).exists()
    archive.unlink()  # a second download finds the tree and fetches nothing
    assert dl.download_dataset("mvtec") == [unpacked]
    main(["datasets"])
    assert re.search(r"mvtec\s+present\s+" + re.escape(str(unpacked)), capsys.readouterr().out)

    train, test = load_mvtec(None, "widget")
    assert len(train.train.x) == 60 and test.class_names == ["good", "hole", "scratch"]
    with pytest.raises(DataError, match=r"no such MVTec AD category.*widget"):
        load_mvtec(None, "bottle")


def test_an_archive_member_that_would_land_outside_the_cache_is_refused(tmp_path, monkeypatch):
    """The unpack uses tarfile's data filter: a `../` member (a crafted or corrupt archive) is a
    DataError naming the archive, and nothing is written outside, nor marked as unpacked."""
    evil = tmp_path / "evil.tar.xz"
    with tarfile.open(evil, "w:xz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    monkeypatch.setenv("GANAD_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError, match=re.escape(str(evil))):
        dl.unpack(evil, "mvtec")
    assert not (tmp_path / "cache" / "escaped.txt").exists() and dl.unpacked_dir("mvtec") is None
