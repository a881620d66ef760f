"""Find, download, verify and cache the original data files.

Resolution order for a file: the offline folder (``data_dir`` argument, else
``$GANAD_DATA_DIR``), laid out like ``../shared/datasets`` (``mnist/``,
``fashion_mnist/``, ``kddcup99/``, ``cifar10/``); then the cache
(``$GANAD_CACHE_DIR``, default ``~/.cache/ganad``); then a download from the
canonical addresses. Every file is checked against its published checksum
before use. Downloads go to a temporary name in the cache folder and are
renamed into place only after the checksum matches, so a truncated or corrupt
download never sits in the cache under its final name.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ganad.errors import DataError


@dataclass(frozen=True)
class RemoteFile:
    """One published file: its name, checksum (md5, or sha256 where only that is published), addresses.

    ``unpack``: an archive that is unpacked once into ``<cache>/<folder>/`` after it is verified
    (MVTec AD: the loaders read its image tree, not the archive).
    """

    name: str
    md5: str | None
    urls: tuple[str, ...]
    size: int | None = None
    sha256: str | None = None
    unpack: bool = False


_MNIST = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_FASHION = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
_KDD = (
    "http://kdd.ics.uci.edu/databases/kddcup99/",
    "https://archive.ics.uci.edu/ml/machine-learning-databases/kddcup99-mld/",
)


def _files(bases: tuple[str, ...], table: list[tuple[str, str, int]]) -> tuple[RemoteFile, ...]:
    return tuple(RemoteFile(n, md5, tuple(b + n for b in bases), size) for n, md5, size in table)


#: data set -> (folder name, files); checksums from ../shared/datasets/README.md
REGISTRY: dict[str, tuple[str, tuple[RemoteFile, ...]]] = {
    "mnist": (
        "mnist",
        _files(
            _MNIST,
            [
                ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422),
                ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", 28881),
                ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", 1648877),
                ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", 4542),
            ],
        ),
    ),
    "fashion-mnist": (
        "fashion_mnist",
        _files(
            _FASHION,
            [
                ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26421880),
                ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe", 29515),
                ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79", 4422102),
                ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310", 5148),
            ],
        ),
    ),
    "kdd99": (
        "kddcup99",
        (
            RemoteFile(
                "kddcup.data_10_percent.gz",
                "c421989ff187d340c1265ac3080a3229",
                (*(b + "kddcup.data_10_percent.gz" for b in _KDD), "https://ndownloader.figshare.com/files/5976042"),
                2144903,
                "8045aca0d84e70e622d1148d7df782496f6333bf6eb979a1b0837c42a9fd9561",
            ),
        ),
    ),
    "cifar10": (
        "cifar10",
        (
            RemoteFile(
                "cifar-10-binary.tar.gz",
                "c32a1d4ab5d03f1284b67883e8d87530",
                ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
            ),
        ),
    ),
    # MVTec AD (Bergmann et al., CVPR 2019; CC BY-NC-SA 4.0), 4.9 GB: the address and sha256 anomalib
    # downloads and checks (anomalib/data/image/mvtec.py, DOWNLOAD_INFO); unpacked to <cache>/mvtec/CATEGORY/
    "mvtec": (
        "mvtec",
        (
            RemoteFile(
                "mvtec_anomaly_detection.tar.xz",
                None,
                (
                    "https://www.mydrive.ch/shares/38536/3830184030e49fe74747669442f0f282/download/"
                    "420938113-1629952094/mvtec_anomaly_detection.tar.xz",
                ),
                sha256="cf4313b13603bec67abb49ca959488f7eedce2a9f7795ec54446c649ac98cd3d",
                unpack=True,
            ),
        ),
    ),
}
#: the marker an unpacked archive's folder gets once every member is in place
UNPACKED = ".unpacked"

_VERIFIED: dict[tuple[str, int, float], bool] = {}


def offline_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    d = data_dir or os.environ.get("GANAD_DATA_DIR")
    return Path(d).expanduser() if d else None


def cache_dir(cache: str | os.PathLike | None = None) -> Path:
    return Path(cache or os.environ.get("GANAD_CACHE_DIR") or Path.home() / ".cache" / "ganad").expanduser()


def md5sum(path: Path) -> str:
    return _digest(path, hashlib.md5())


def sha256sum(path: Path) -> str:
    return _digest(path, hashlib.sha256())


def _digest(path: Path, h: hashlib._Hash) -> str:
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, rf: RemoteFile, dataset: str = "NAME") -> None:
    """Raise DataError unless ``path`` has the published checksum (cached per size and mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime)
    if _VERIFIED.get(key):
        return
    if rf.size is not None and st.st_size != rf.size:
        raise DataError(
            f"{path}: {st.st_size} bytes, expected {rf.size} (truncated or a different file); "
            f"delete it and download again (`ganad datasets download {dataset}`)"
        )
    kind, want = ("md5", rf.md5) if rf.md5 else ("sha256", rf.sha256)
    got = md5sum(path) if kind == "md5" else sha256sum(path)
    if got != want:
        raise DataError(
            f"{path}: {kind} {got} does not match the published {want} (corrupt or a different file); "
            f"delete it and download again (`ganad datasets download {dataset}`)"
        )
    _VERIFIED[key] = True


def unpacked_dir(dataset: str, cache: str | os.PathLike | None = None) -> Path | None:
    """Where ``dataset``'s archive was unpacked in the cache, if it was (completely)."""
    folder = REGISTRY[dataset][0]
    d = cache_dir(cache) / folder
    return d if (d / UNPACKED).is_file() else None


def unpack(archive: Path, dataset: str, cache: str | os.PathLike | None = None) -> Path:
    """Unpack a verified archive into ``<cache>/<folder>/`` (once), returning that folder.

    Members go to a temporary folder beside it first, with tarfile's ``data`` filter (no
    absolute paths, no ``..``, no links out of the tree, no device files), and move into place
    when all are out; the marker file is written last, so an interrupted unpack is redone.
    """
    import tarfile

    done = unpacked_dir(dataset, cache)
    if done is not None:
        return done
    dest = cache_dir(cache) / REGISTRY[dataset][0]
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".unpack.", suffix=".part", dir=dest))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        for member in tmp.iterdir():
            target = dest / member.name
            if target.is_dir():  # left by an unpack that did not finish
                shutil.rmtree(target)
            os.replace(member, target)
        (dest / UNPACKED).write_text(f"{archive.name}\n")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{archive}: could not unpack ({type(e).__name__}: {e})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _lookup(dataset: str, filename: str) -> tuple[str, RemoteFile]:
    if dataset not in REGISTRY:
        raise DataError(f"unknown data set '{dataset}'; downloadable: {', '.join(REGISTRY)}")
    folder, files = REGISTRY[dataset]
    for rf in files:
        if rf.name == filename:
            return folder, rf
    raise DataError(f"data set '{dataset}' has no file '{filename}'")


def fetch_url(url: str, dest: Path, timeout: float = 60.0) -> None:
    """Stream ``url`` into ``dest`` (the caller verifies the checksum).

    A server that closes the connection early makes ``read`` return short,
    not fail; comparing with Content-Length names that case ("connection
    closed after k of n bytes") instead of leaving it to the checksum. The
    file is flushed to disk before the caller renames it into the cache.
    """
    req = urllib.request.Request(url, headers={"User-Agent": "ganad"})
    with urllib.request.urlopen(req, timeout=timeout) as resp, dest.open("wb") as out:
        shutil.copyfileobj(resp, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())
        promised = resp.headers.get("Content-Length")
        got = out.tell()
    if promised is not None and promised.isdigit() and got != int(promised):
        raise DataError(f"connection closed after {got} of {promised} bytes (truncated download)")


def resolve_file(
    dataset: str,
    filename: str,
    data_dir: str | os.PathLike | None = None,
    cache: str | os.PathLike | None = None,
    download: bool = True,
) -> Path:
    """The verified local path of one original data file (offline folder, cache, or download)."""
    folder, rf = _lookup(dataset, filename)
    off = offline_dir(data_dir)
    if off is not None and (off / folder / filename).is_file():
        path = off / folder / filename
        verify(path, rf, dataset)
        return path
    cached = cache_dir(cache) / folder / filename
    if cached.is_file():
        verify(cached, rf, dataset)
        return cached
    where = (
        f"{off / folder / filename}" if off else f"<data-dir>/{folder}/{filename} (with --data-dir or GANAD_DATA_DIR)"
    )
    if not download:
        raise DataError(f"{filename} of {dataset} not found; put the original file at {where} or at {cached}")
    checksum = f"md5 {rf.md5}" if rf.md5 else f"sha256 {rf.sha256}"
    errors = []
    cached.parent.mkdir(parents=True, exist_ok=True)
    for url in rf.urls:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=cached.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            fetch_url(url, tmp)
            verify(tmp, rf, dataset)
            os.replace(tmp, cached)
            return cached
        except (urllib.error.URLError, http.client.HTTPException, OSError, DataError, ValueError) as e:
            errors.append(f"{url}: {e}")
        finally:
            tmp.unlink(missing_ok=True)
    raise DataError(
        f"{filename} of {dataset} is not available offline and could not be downloaded "
        f"({'; '.join(errors)}). Nothing was written to the cache. Retry later, or download it from "
        f"{rf.urls[0]} yourself ({checksum}) and put it at {where}"
    )


def dataset_status(data_dir: str | os.PathLike | None = None, cache: str | os.PathLike | None = None) -> list[dict]:
    """Per data set: where its files are, and whether all are present (not checksummed here: fast)."""
    rows = [{"name": "digits", "status": "built-in", "where": "scikit-learn (no download)"}]
    off = offline_dir(data_dir)
    for name, (folder, files) in REGISTRY.items():
        found = []
        for rf in files:
            for base in ([off] if off else []) + [cache_dir(cache)]:
                if (base / folder / rf.name).is_file() or (rf.unpack and (base / folder / UNPACKED).is_file()):
                    found.append(str(base / folder))
                    break
        status = "present" if len(found) == len(files) else ("partial" if found else "missing")
        rows.append(
            {
                "name": name,
                "status": status,
                "where": sorted(set(found))[0] if found else f"download: ganad datasets download {name}",
            }
        )
    return rows


def download_dataset(name: str, cache: str | os.PathLike | None = None) -> list[Path]:
    """Fetch and verify every file of a data set into the cache (or find it offline)."""
    if name not in REGISTRY:
        raise DataError(f"unknown data set '{name}'; downloadable: {', '.join(REGISTRY)}")
    out = []
    for rf in REGISTRY[name][1]:
        if rf.unpack and unpacked_dir(name, cache) is not None:
            out.append(unpacked_dir(name, cache))
            continue
        path = resolve_file(name, rf.name, cache=cache)
        if rf.unpack:
            out.append(unpack(path, name, cache))
            if path.parent == out[-1]:
                path.unlink()  # the cached archive: its unpacked tree replaces it (an offline copy is kept)
        else:
            out.append(path)
    return out
