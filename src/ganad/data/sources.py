"""One loader per data source, all returning :class:`~ganad.data.types.Source`.

Images come back as uint8 (N, C, H, W), rows as float32 (N, D), labels as
int64 class indices into ``class_names``. Nothing here scales or splits:
protocols split (:mod:`ganad.data.protocols`), and the model's preprocessing
scales on training rows only (:mod:`ganad.data.transforms`).

KDD Cup 99 follows EGBAD's published code (Zenati et al. 2018,
github.com/houssamzenati/Efficient-GAN-Anomaly-Detection, ``data/kdd.py``):
it one-hot encodes seven columns, ``protocol_type``, ``service``, ``flag``
*and* the binary ``land``, ``logged_in``, ``is_host_login`` and
``is_guest_login`` (``text_l`` in ``_get_dataset``), each into one column per
value present in the file. On the 10 % file that is 3 + 66 + 11 + 2 + 2 + 1
+ 2 = 87 indicator columns plus 34 numeric ones = 121 features, EGBAD's
``get_shape_input() -> (None, 121)``; one-hot of the three string columns
alone gives 118.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import struct
import tarfile
import tempfile
import tokenize
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ganad.data.download import cache_dir, md5sum, offline_dir, resolve_file, unpacked_dir
from ganad.data.types import ArraySet, Source
from ganad.errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})

#: what gzip raises on a damaged stream: BadGzipFile is an OSError, a cut stream an
#: EOFError, and damage inside the deflate data surfaces as zlib.error (not an OSError)
GZIP_ERRORS = (OSError, EOFError, zlib.error)
REFETCH = "delete the file and run `ganad datasets download` (or copy the original again)"

MNIST_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
KDD_COLUMNS = [
    "duration",
    "protocol_type",
    "service",
    "flag",
    "src_bytes",
    "dst_bytes",
    "land",
    "wrong_fragment",
    "urgent",
    "hot",
    "num_failed_logins",
    "logged_in",
    "num_compromised",
    "root_shell",
    "su_attempted",
    "num_root",
    "num_file_creations",
    "num_shells",
    "num_access_files",
    "num_outbound_cmds",
    "is_host_login",
    "is_guest_login",
    "count",
    "srv_count",
    "serror_rate",
    "srv_serror_rate",
    "rerror_rate",
    "srv_rerror_rate",
    "same_srv_rate",
    "diff_srv_rate",
    "srv_diff_host_rate",
    "dst_host_count",
    "dst_host_srv_count",
    "dst_host_same_srv_rate",
    "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate",
    "dst_host_srv_diff_host_rate",
    "dst_host_serror_rate",
    "dst_host_srv_serror_rate",
    "dst_host_rerror_rate",
    "dst_host_srv_rerror_rate",
]
#: EGBAD's ``text_l``: the columns it one-hot encodes
KDD_ONE_HOT = ["protocol_type", "service", "flag", "land", "logged_in", "is_host_login", "is_guest_login"]


# -- IDX (MNIST, Fashion-MNIST) ------------------------------------------------
def read_idx(path: Path) -> np.ndarray:
    """Parse a gzip-compressed IDX file (images: magic 0x803, labels: 0x801)."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except GZIP_ERRORS as e:
        raise DataError(f"{path}: not a readable gzip file ({e}); {REFETCH}") from None
    if len(data) < 8:
        raise DataError(f"{path}: too short for an IDX header")
    magic, n = struct.unpack(">II", data[:8])
    if magic == 0x803:
        rows, cols = struct.unpack(">II", data[8:16])
        shape, offset = (n, rows, cols), 16
    elif magic == 0x801:
        shape, offset = (n,), 8
    else:
        raise DataError(f"{path}: IDX magic {magic:#x}, expected 0x803 (images) or 0x801 (labels)")
    expected = offset + int(np.prod(shape))
    if len(data) != expected:
        raise DataError(f"{path}: {len(data)} bytes after decompression, header promises {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def _load_idx_set(name: str, class_names: list[str], data_dir: str | None, download: bool) -> Source:
    def part(prefix: str) -> ArraySet:
        x = read_idx(resolve_file(name, f"{prefix}-images-idx3-ubyte.gz", data_dir, download=download))
        y = read_idx(resolve_file(name, f"{prefix}-labels-idx1-ubyte.gz", data_dir, download=download))
        if len(x) != len(y):
            raise DataError(f"{name} {prefix}: {len(x)} images but {len(y)} labels")
        return ArraySet(x[:, None].copy(), y.astype(np.int64))

    return Source(name, "image", part("train"), part("t10k"), class_names)


# -- CIFAR-10 (binary version: no pickle is ever loaded) -------------------------
CIFAR_RECORD = 1 + 3 * 32 * 32


def read_cifar_binary(path: Path) -> Source:
    """Read ``cifar-10-binary.tar.gz``: records of 1 label byte + 3072 bytes (R, G, B planes)."""
    parts: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
            for name in names:
                if name not in members:
                    raise DataError(f"{path}: member {name} missing (is this cifar-10-binary.tar.gz?)")
                f = tar.extractfile(members[name])
                raw = np.frombuffer(f.read() if f else b"", dtype=np.uint8)
                if raw.size % CIFAR_RECORD:
                    raise DataError(f"{path}: {name} is {raw.size} bytes, not a multiple of {CIFAR_RECORD}")
                parts["test" if name.startswith("test") else "train"].append(raw.reshape(-1, CIFAR_RECORD))
    except (tarfile.TarError, *GZIP_ERRORS) as e:
        raise DataError(f"{path}: unreadable or truncated archive ({e}); {REFETCH}") from None

    def arrays(chunks: list[np.ndarray]) -> ArraySet:
        rec = np.concatenate(chunks)
        if rec[:, 0].max(initial=0) > 9:
            raise DataError(f"{path}: label byte > 9")
        return ArraySet(rec[:, 1:].reshape(-1, 3, 32, 32).copy(), rec[:, 0].astype(np.int64))

    return Source("cifar10", "image", arrays(parts["train"]), arrays(parts["test"]), CIFAR_CLASSES)


# -- KDD Cup 99 -------------------------------------------------------------------
#: version of the parsed-KDD cache layout; bump it when :func:`_parse_kdd` changes its output
KDD_CACHE_VERSION = 1


def read_kdd(path: Path, cache: str | os.PathLike | None = None) -> Source:
    """KDD Cup 99 10 % rows, encoded as EGBAD does (121 columns), unscaled; classes = label strings.

    Parsing the 494,021 text rows takes 15-25 s; a grid trains tens of detectors on
    the same file, so the parsed arrays are cached (uncompressed ``.npz``, read back
    in well under a second, no pickle) under ``$GANAD_CACHE_DIR/parsed/``, keyed by
    the md5 of the source file's bytes and :data:`KDD_CACHE_VERSION`: a changed file
    or a changed encoder never reads a stale cache. A cache that cannot be read or
    written is ignored (the file is parsed as before).
    """
    cached = cache_dir(cache) / "parsed" / f"kdd99-{md5sum(path)}-v{KDD_CACHE_VERSION}.npz"
    try:
        with np.load(cached, allow_pickle=False) as z:
            return _kdd_source(z["x"], z["y"], z["class_names"].tolist(), z["feature_names"].tolist())
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        pass  # no cache yet, or a damaged one: parse the file
    source = _parse_kdd(path)
    tmp: str | None = None
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cached.parent, prefix=cached.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                x=source.train.x,
                y=source.train.y,
                class_names=np.array(source.class_names),
                feature_names=np.array(source.feature_names),
            )
        os.replace(tmp, cached)  # readers see the old state or the whole new file, never half of it
    except OSError:  # a read-only or full cache folder: the parsed source is still good
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return source


def _kdd_source(x: np.ndarray, y: np.ndarray, class_names: list[str], feature_names: list[str]) -> Source:
    return Source(
        "kdd99",
        "tabular",
        ArraySet(x, y),
        None,
        class_names,
        feature_names=feature_names,
        info={"encoding": "EGBAD data/kdd.py: one-hot of " + ", ".join(KDD_ONE_HOT)},
    )


def _parse_kdd(path: Path) -> Source:
    """The text rows of ``path`` encoded as :func:`read_kdd` describes."""
    try:
        with gzip.open(path, "rt", encoding="ascii") as f:
            rows = list(csv.reader(f))
    except (*GZIP_ERRORS, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: not a readable gzip CSV ({e}); {REFETCH}") from None
    if not rows:
        raise DataError(f"{path}: no rows; {REFETCH}")
    bad = next((i for i, r in enumerate(rows) if len(r) != len(KDD_COLUMNS) + 1), None)
    if bad is not None:
        raise DataError(f"{path}: row {bad + 1} has {len(rows[bad])} fields, expected {len(KDD_COLUMNS) + 1}")
    cols = list(zip(*rows, strict=True))
    labels = np.array(cols[-1])
    class_names = sorted(set(labels.tolist()))
    y = np.searchsorted(class_names, labels).astype(np.int64)
    blocks, names = [], []
    for j, col in enumerate(KDD_COLUMNS):  # numeric columns first, as pandas' drop + append leaves them
        if col not in KDD_ONE_HOT:
            try:
                blocks.append(np.asarray(cols[j], dtype=np.float64)[:, None])
            except ValueError:
                raise DataError(f"{path}: column '{col}' holds a non-number") from None
            names.append(col)
    for col in KDD_ONE_HOT:  # then indicators in text_l order, values sorted (pandas.get_dummies)
        values = np.array(cols[KDD_COLUMNS.index(col)])
        cats = sorted(set(values.tolist()), key=lambda v: (not _is_number(v), float(v) if _is_number(v) else 0, v))
        blocks.append((values[:, None] == np.array(cats)[None, :]).astype(np.float64))
        names += [f"{col}-{c}" for c in cats]
    x = np.hstack(blocks).astype(np.float32)
    return _kdd_source(x, y, class_names, names)


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


# -- scikit-learn's digits (offline quick start) ------------------------------------
def load_digits_source() -> Source:
    """The 1,797 8x8 digits shipped inside scikit-learn: values 0..16 scaled to 0..255."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.round(d.images * (255 / 16)).astype(np.uint8)[:, None]
    return Source("digits", "image", ArraySet(x, d.target.astype(np.int64)), None, MNIST_CLASSES)


# -- a user's images -------------------------------------------------------------
def find_images(folder: Path) -> list[Path]:
    """Image files under ``folder``, recursively and sorted; the one listing training and scoring share.

    Symbolic links are treated alike whether they point at a file or a folder: both are
    followed (before, ``rglob`` skipped linked folders but read linked files), and a linked
    folder reached twice (a link cycle) is read once. Only regular files count: a FIFO or a
    device named ``*.png`` would block the reader for ever.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for root, dirs, names in os.walk(folder, followlinks=True):
        real = Path(root).resolve()
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        for name in names:
            p = Path(root) / name
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():  # is_file: regular files (after links) only
                found.append(p)
    return sorted(found)


def _image_files(folder: Path) -> list[Path]:
    if not folder.exists():
        raise DataError(f"{folder}: folder not found")
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    files = find_images(folder)
    if not files:
        raise DataError(f"{folder}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def _size_tuple(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int):
        return (size, size)
    return (int(size[0]), int(size[1]))


def read_image_files(
    paths: Sequence[Path],
    size: int | Sequence[int] | None = None,
    channels: int | None = None,
    mixed_hint: str = "pass --channels 1 or 3 to convert",
    converted: list[Path] | None = None,
) -> np.ndarray:
    """Read images into uint8 (N, C, H, W), resized to ``size`` and converted to ``channels``.

    Without ``channels`` all images must share a channel count (grey or colour,
    alpha ignored); without ``size`` all must share a size. Errors name the
    file at fault (and, for mixed inputs, the first file it disagrees with);
    ``mixed_hint`` ends the mixed-channels error with what the caller's user can do; ``converted``,
    if given, receives each file whose channels were converted, so a caller can say so.
    """
    hw = _size_tuple(size)
    out: list[np.ndarray] = []
    first: tuple[Path, int, tuple[int, ...]] | None = None
    for p in paths:
        arr, mode_c = _read_image(p, hw, channels)
        if converted is not None and channels is not None and mode_c != channels:
            converted.append(p)
        if first is None:
            first = (p, mode_c, arr.shape[1:])
        else:
            if channels is None and mode_c != first[1]:
                raise DataError(f"images of mixed channels: {first[0]} has {first[1]}, {p} has {mode_c}; {mixed_hint}")
            if arr.shape[1:] != first[2]:
                raise DataError(
                    f"images of mixed sizes: {first[0]} is {first[2]}, {p} is {arr.shape[1:]}; "
                    "pass --image-size to resize"
                )
        out.append(arr)
    if not out:
        raise DataError("no images given")
    return np.stack(out)


def _read_image(p: Path, hw: tuple[int, int] | None, channels: int | None) -> tuple[np.ndarray, int]:
    """One image as uint8 (C, H, W) plus the channel count of the file itself (1 grey, 3 colour).

    PIL's decoders signal a damaged file with a zoo of exception types
    (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError,
    DecompressionBombError, ...). Everything inside the ``try`` decodes one
    user file, so any exception there is that file's fault and becomes a
    DataError naming it, never a traceback.
    """
    try:
        with Image.open(p) as im:
            im.load()
            mode_c = 1 if _is_grey(im) else 3
            c = channels or mode_c
            src = _deep_grey_to_8bit(im, p) if im.mode.startswith("I") or im.mode == "F" else im
            im2 = src.convert("L" if c == 1 else "RGB")
            if hw is not None and im2.size != (hw[1], hw[0]):
                im2 = im2.resize((hw[1], hw[0]), Image.BILINEAR)
            arr = np.asarray(im2, dtype=np.uint8)
    except DataError:
        raise
    except Image.DecompressionBombError as e:
        raise DataError(f"{p}: image too large to decode safely ({e})") from None
    except (UnidentifiedImageError, IsADirectoryError, PermissionError, FileNotFoundError) as e:
        raise DataError(f"{p}: not a readable image ({e})") from None
    except Exception as e:  # see the docstring: any decoder failure is the file's fault
        raise DataError(f"{p}: unreadable or truncated image ({type(e).__name__}: {e})") from None
    return (arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)), mode_c


def _deep_grey_to_8bit(im: Image.Image, p: Path) -> Image.Image:
    """16-bit / 32-bit / float grey images scaled to 8 bits.

    PIL's own ``convert("L")`` clips such images at 255, which turns a 16-bit
    scan into a white page without a word; here 16-bit files are scaled by
    their full range (0..65535), and 32-bit integer or float files are read
    like arrays are by the API (values in [0, 1] or [0, 255]; 0..65535 for
    integers), anything else is an error naming the file and the range.
    """
    a = np.asarray(im)
    if im.mode.startswith("I;16"):
        return Image.fromarray(np.round(a.astype(np.float64) / 257).astype(np.uint8))
    a = a.astype(np.float64)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if not np.isfinite(a).all():
        raise DataError(f"{p}: {im.mode}-mode image holds NaN or inf pixels")
    if lo >= 0 and hi <= 1 and im.mode == "F":
        a = a * 255
    elif lo >= 0 and hi <= 255:
        pass
    elif lo >= 0 and hi <= 65535 and im.mode != "F":
        a = a / 257
    else:
        raise DataError(
            f"{p}: {im.mode}-mode pixel values span [{lo:g}, {hi:g}]; expected 8 or 16 bits, or floats in [0, 1]"
        )
    return Image.fromarray(np.round(a).astype(np.uint8))


#: PIL bands that carry grey levels (alpha "A" is ignored: an "LA" image is grey)
_GREY_BANDS = frozenset({"1", "L", "I", "F"})


def _is_grey(im: Image.Image) -> bool:
    """True for grey images, including palette images whose colours in use are all grey."""
    bands = set(im.getbands()) - {"A"}
    if bands <= _GREY_BANDS:
        return True
    if bands == {"P"}:
        rgb = np.asarray(im.convert("RGB"))
        return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
    return False


def load_image_folder(
    folder: str | Path, size: int | Sequence[int] | None = None, channels: int | None = None
) -> Source:
    """A folder (searched recursively) of normal images, for training; all labelled normal (0)."""
    files = _image_files(Path(folder))
    x = read_image_files(files, size, channels)
    return Source(
        f"folder:{folder}",
        "image",
        ArraySet(x, np.zeros(len(x), dtype=np.int64)),
        None,
        ["normal"],
        info={"files": [str(f) for f in files], "images_read": {str(folder): len(files)}},
    )


def load_labelled_image_folder(
    folder: str | Path, size: int | Sequence[int] | None = None, channels: int | None = None
) -> Source:
    """An evaluation folder with ``normal/`` and ``anomalous/`` subfolders; y = 1 for anomalous."""
    folder = Path(folder)
    parts = {name: folder / name for name in ("normal", "anomalous")}
    missing = [str(p) for p in parts.values() if not p.is_dir()]
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found")
    if missing:
        raise DataError(f"{folder}: needs subfolders normal/ and anomalous/ (missing: {', '.join(missing)})")
    files = {k: _image_files(p) for k, p in parts.items()}
    all_files = files["normal"] + files["anomalous"]
    x = read_image_files(all_files, size, channels)
    y = np.r_[np.zeros(len(files["normal"])), np.ones(len(files["anomalous"]))].astype(np.int64)
    return Source(
        f"folder:{folder}",
        "image",
        ArraySet(x, y),
        None,
        ["normal", "anomalous"],
        info={
            "files": [str(f) for f in all_files],
            "images_read": {str(parts[k]): len(v) for k, v in files.items()},
        },
    )


# -- the MVTec AD layout ------------------------------------------------------------
def read_masks(images: Sequence[Path], masks: Sequence[Path | None], size: Sequence[int]) -> np.ndarray:
    """uint8 (N, H, W) ground-truth masks (1 = anomalous pixel) of ``images``, resized to ``size`` by
    nearest neighbour; None (a normal image) is an all-zero mask. A missing or unreadable mask is a
    DataError naming the image and the mask file looked for."""
    h, w = int(size[0]), int(size[1])
    out = np.zeros((len(images), h, w), dtype=np.uint8)
    for i, (img, mask) in enumerate(zip(images, masks, strict=True)):
        if mask is None:
            continue
        if not Path(mask).is_file():
            raise DataError(f"{img}: no ground-truth mask {mask}")
        try:
            with Image.open(mask) as im:
                out[i] = np.asarray(im.convert("L").resize((w, h), Image.NEAREST)) > 127
        except Exception as e:  # any decoder failure is the mask file's fault
            raise DataError(f"{mask}: unreadable mask ({type(e).__name__}: {e})") from None
    return out


def mvtec_root(data_dir: str | Path | None, category: str) -> Path:
    """The folder holding MVTec AD's category folders.

    ``data_dir`` is that folder (``--data-dir ROOT``), or an offline folder laid out like
    ``../shared/datasets`` with it under ``mvtec/``; without ``data_dir``, ``$GANAD_DATA_DIR/mvtec``,
    then the tree ``ganad datasets download mvtec`` unpacked into the cache.
    """
    candidates = [Path(data_dir), Path(data_dir) / "mvtec"] if data_dir else []
    off = offline_dir(None)
    if not data_dir and off is not None:
        candidates.append(off / "mvtec")
    for root in candidates:
        if (root / category).is_dir():
            return root
    unpacked = unpacked_dir("mvtec")
    if not data_dir and unpacked is not None:
        return unpacked
    if data_dir:
        return Path(data_dir)  # load_mvtec names what it holds
    raise DataError(
        "MVTec AD not found: pass --data-dir ROOT (the folder holding bottle/, cable/, ...) or run "
        "`ganad datasets download mvtec` (4.9 GB, checked against its published sha256)"
    )


def load_mvtec(
    root: str | Path | None, category: str, size: int | Sequence[int] | None = None, channels: int | None = None
) -> tuple[Source, Source]:
    """One category of the MVTec AD layout: (training source, labelled test source with masks).

    ``ROOT/CATEGORY/train/good/`` are the normal training images; ``test/good/`` the normal test
    images and ``test/<defect>/`` the anomalous ones, each with ``ground_truth/<defect>/<id>_mask.png``
    (Bergmann et al., CVPR 2019). Test labels are 1 for every defect; ``classes`` says which defect
    (index into the class names, ``good`` first) and ``masks`` holds the pixel masks, resized to the
    images' size (nearest neighbour) and zero for good images.
    """
    root = mvtec_root(root, category)
    base = root / category
    if not base.is_dir():
        kinds = sorted(p.name for p in Path(root).iterdir() if p.is_dir()) if Path(root).is_dir() else []
        raise DataError(f"{base}: no such MVTec AD category" + (f"; {root} holds {', '.join(kinds)}" if kinds else ""))
    train_files = _image_files(base / "train" / "good")
    test_dir = base / "test"
    defects = sorted(p.name for p in test_dir.iterdir() if p.is_dir() and p.name != "good") if test_dir.is_dir() else []
    if not (test_dir / "good").is_dir() or not defects:
        raise DataError(f"{test_dir}: needs good/ and at least one defect folder (the MVTec AD layout)")
    names = ["good", *defects]
    files, kind = [], []
    for k, name in enumerate(names):
        found = _image_files(test_dir / name)
        files += found
        kind += [k] * len(found)
    x_train = read_image_files(train_files, size, channels)
    x_test = read_image_files(files, size or x_train.shape[2:], channels or x_train.shape[1])
    wanted = [
        None if k == 0 else base / "ground_truth" / names[k] / f"{f.stem}_mask.png"
        for f, k in zip(files, kind, strict=True)
    ]
    masks = read_masks(files, wanted, x_test.shape[2:])
    y = (np.asarray(kind) > 0).astype(np.int64)
    info = {"files": [str(f) for f in train_files + files], "images_read": {str(base / "train/good"): len(train_files)}}
    normal = ArraySet(x_train, np.zeros(len(x_train), np.int64))
    train = Source(f"mvtec:{category}", "image", normal, None, ["good"], info=info)
    test = Source(
        f"mvtec:{category}:test",
        "image",
        ArraySet(x_test, y, classes=np.asarray(kind, dtype=np.int64), masks=masks),
        None,
        names,
    )
    return train, test


# -- a user's arrays ----------------------------------------------------------------
def read_npy(path: str | Path) -> np.ndarray:
    """A ``.npy`` array, memory-mapped (so scoring a large one streams) and never unpickled.

    ``np.load`` reports damage as ValueError, OSError, EOFError or even
    tokenize.TokenError (a cut header is parsed as Python literals), and a
    ``.npz`` archive renamed ``.npy`` loads as something else entirely: all of
    these become a DataError naming the file.
    """
    path = Path(path)
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError, tokenize.TokenError, SyntaxError) as e:
        raise DataError(f"{path}: not a readable .npy array ({type(e).__name__}: {e})") from None
    if not isinstance(arr, np.ndarray):
        raise DataError(f"{path}: not a single .npy array (a .npz archive?); save it with numpy.save")
    if arr.ndim < 2:
        raise DataError(f"{path}: array of shape {arr.shape}; expected (N, D) rows or (N, [C,] H, W[, C]) images")
    return arr


# -- a user's CSV ------------------------------------------------------------------
#: label columns with more distinct values than this are not checked value by value
MAX_LABEL_VALUES = 1000
#: the most values a text column may one-hot encode to; a column with more (or with more than
#: half as many values as rows, past 50) is an identifier or free text, refused with a message
MAX_CATEGORIES = 1000
#: values beyond this become inf as float32, the type models train in
FLOAT32_MAX = float(np.finfo(np.float32).max)


def load_csv(
    path: str | Path,
    label_column: str,
    anomaly_value: str,
    categorical: Sequence[str] | None = None,
    like: Source | None = None,
) -> Source:
    """Rows of a CSV with a header; y = 1 where ``label_column == anomaly_value``.

    Numeric columns are kept; categorical columns (given, or the non-numeric
    ones when ``categorical`` is None) are one-hot encoded with their
    categories recorded in ``info`` so a test or scoring CSV (``like=``) is
    encoded identically. Text in a mostly numeric column, empty cells, NaN and
    inf are errors naming the row (the line of the file) and column.

    Labels: an empty label is an error, and a test CSV (``like=``) may only
    hold the anomaly value or labels seen in the training CSV, so a typo such
    as ``atack`` is reported instead of silently counting as normal.
    """
    path = Path(path)
    anomaly_value = str(anomaly_value).strip()
    header, rows, lines = _read_csv(path)
    if label_column not in header:
        raise DataError(f"{path}: label column '{label_column}' not found; columns: {', '.join(header)}")
    pos = {c: j for j, c in enumerate(header)}  # one lookup table: header.index per column was quadratic
    li = pos[label_column]
    labels = [r[li].strip() for r in rows]
    empty = next((i for i, v in enumerate(labels) if not v), None)
    if empty is not None:
        raise DataError(f"{path}: row {lines[empty]}, column '{label_column}': empty label")
    if like is not None:
        info = like.info
        known = info.get("label_values")
        if known is not None:
            allowed = {*known, anomaly_value}
            bad = next((i for i, v in enumerate(labels) if v not in allowed), None)
            if bad is not None:
                raise DataError(
                    f"{path}: row {lines[bad]}, column '{label_column}': label {labels[bad]!r} is neither the "
                    f"anomaly value {anomaly_value!r} nor a label of the training CSV ({_some(known)})"
                )
    else:
        feats = [c for c in header if c != label_column]
        if not feats:
            raise DataError(f"{path}: no feature columns besides the label column '{label_column}'")
        if categorical is None:
            categorical = [c for c in feats if _mostly_text([r[pos[c]] for r in rows])]
        unknown = [c for c in categorical if c not in pos]
        if unknown:
            raise DataError(f"{path}: categorical column(s) not found: {', '.join(unknown)}")
        values = sorted(set(labels))
        categories = {c: sorted({r[pos[c]].strip() for r in rows}) for c in categorical}
        for c, cats in categories.items():
            if len(cats) > MAX_CATEGORIES or (len(cats) > 50 and len(cats) > len(rows) / 2):
                raise DataError(
                    f"{path}: column '{c}' holds {len(cats)} different text values in {len(rows)} rows "
                    "(an identifier or free text?): one-hot encoding would make a column per value and refuse "
                    "every new value when scoring; remove the column from the CSV"
                )
        info = {
            "columns": feats,
            "label_column": label_column,
            "anomaly_value": anomaly_value,
            "categories": categories,
            "label_values": values if len(values) <= MAX_LABEL_VALUES else None,
        }
    x = _encode(path, header, rows, lines, info)
    y = np.array([lab == anomaly_value for lab in labels], dtype=np.int64)
    if like is None and not (y == 0).any():
        raise DataError(f"{path}: every row has {label_column} == {anomaly_value!r}; no normal rows to learn from")
    names = [
        c if c not in info["categories"] else f"{c}={v}"
        for c in info["columns"]
        for v in (info["categories"].get(c) or [None])
    ]
    return Source(
        f"csv:{path}", "tabular", ArraySet(x, y), None, ["normal", "anomalous"], feature_names=names, info=info
    )


def _some(values: Sequence[str], k: int = 10) -> str:
    shown = ", ".join(repr(v) for v in values[:k])
    return shown + (f", ... ({len(values)} in all)" if len(values) > k else "")


def encode_csv_rows(path: str | Path, info: dict) -> np.ndarray:
    """Encode a scoring CSV exactly like the training CSV (label column optional)."""
    return read_csv_rows(path, info)[0]


def read_csv_rows(path: str | Path, info: dict) -> tuple[np.ndarray, list[int]]:
    """A scoring CSV encoded like the training CSV, with the file line of each row (for naming rows)."""
    if not info or "columns" not in info:
        raise DataError(f"{path}: this detector has no CSV encoding recorded (was it trained on a CSV?)")
    header, rows, lines = _read_csv(Path(path))
    return _encode(Path(path), header, rows, lines, info), lines


def _read_csv(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, rows, and the file line each row ends on (blank lines and quoted newlines counted)."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as e:
        raise DataError(f"{path}: not a readable UTF-8 text file ({e})") from None
    table: list[list[str]] = []
    lines: list[int] = []
    reader = csv.reader(io.StringIO(text))
    try:
        for record in reader:
            if record:
                table.append(record)
                lines.append(reader.line_num)
    except csv.Error as e:
        raise DataError(f"{path}: malformed CSV at row {reader.line_num} ({e})") from None
    if not table:
        raise DataError(f"{path}: empty file")
    header = [h.strip() for h in table[0]]
    blank = [i + 1 for i, h in enumerate(header) if not h]
    if blank:
        raise DataError(f"{path}: header has an empty column name at position(s) {', '.join(map(str, blank))}")
    counts: dict[str, int] = {}
    for h in header:
        counts[h] = counts.get(h, 0) + 1
    dup = sorted(h for h, n in counts.items() if n > 1)
    if dup:
        raise DataError(f"{path}: duplicate column name(s): {', '.join(dup)}")
    rows, lines = table[1:], lines[1:]
    if not rows:
        raise DataError(f"{path}: header only, no rows")
    for r, line in zip(rows, lines, strict=True):
        if len(r) != len(header):
            raise DataError(f"{path}: row {line} has {len(r)} fields, the header has {len(header)}")
    return header, rows, lines


def _mostly_text(values: list[str]) -> bool:
    """A column is categorical when most of its cells are not numbers."""
    numeric = sum(_is_number(v) for v in values)
    return numeric < len(values) / 2


def _encode(path: Path, header: list[str], rows: list[list[str]], lines: list[int], info: dict) -> np.ndarray:
    pos = {c: j for j, c in enumerate(header)}
    missing = [c for c in info["columns"] if c not in pos]
    if missing:
        raise DataError(f"{path}: missing column(s): {', '.join(missing)}")
    blocks = []
    for c in info["columns"]:
        j = pos[c]
        cats = info["categories"].get(c)
        if cats is not None:
            vals = [r[j].strip() for r in rows]
            bad = next((i for i, v in enumerate(vals) if v not in cats), None)
            if bad is not None:
                raise DataError(
                    f"{path}: row {lines[bad]}, column '{c}': value {vals[bad]!r} was not seen in training "
                    f"(seen: {_some(cats)})"
                )
            blocks.append(np.array([[v == k for k in cats] for v in vals], dtype=np.float32))
            continue
        col = np.empty(len(rows), dtype=np.float64)
        for i, r in enumerate(rows):
            v = r[j].strip()
            where = f"{path}: row {lines[i]}, column '{c}'"
            if v == "":
                raise DataError(f"{where}: empty cell")
            try:
                f = float(v)
            except ValueError:
                raise DataError(f"{where}: {v!r} is not a number") from None
            if not math.isfinite(f):
                raise DataError(f"{where}: {v!r} (NaN/inf are not allowed)")
            if abs(f) > FLOAT32_MAX:
                raise DataError(f"{where}: {v!r} does not fit a 32-bit float")
            col[i] = f
        blocks.append(col[:, None].astype(np.float32))
    return np.hstack(blocks) if blocks else np.zeros((len(rows), 0), dtype=np.float32)


# -- dispatch --------------------------------------------------------------------
SOURCES = ("mnist", "fashion-mnist", "cifar10", "kdd99", "digits")
#: the data sets whose samples are rows (every other one holds images)
TABULAR_SOURCES = ("kdd99", "csv")
#: the data sets a user brings (``--train-dir`` / ``--test-dir``, ``--train-csv`` / ``--test-csv``)
USER_SOURCES = ("folder", "csv", "mvtec")


def load_source(name: str, data_dir: str | None = None, download: bool = True) -> Source:
    """Load a built-in data set by name (files found offline, in the cache, or downloaded)."""
    if name == "mnist":
        return _load_idx_set("mnist", MNIST_CLASSES, data_dir, download)
    if name == "fashion-mnist":
        return _load_idx_set("fashion-mnist", FASHION_CLASSES, data_dir, download)
    if name == "cifar10":
        return read_cifar_binary(resolve_file("cifar10", "cifar-10-binary.tar.gz", data_dir, download=download))
    if name == "kdd99":
        return read_kdd(resolve_file("kdd99", "kddcup.data_10_percent.gz", data_dir, download=download))
    if name == "digits":
        return load_digits_source()
    raise DataError(f"unknown data set '{name}'; choose one of: {', '.join((*SOURCES, *USER_SOURCES))}")
