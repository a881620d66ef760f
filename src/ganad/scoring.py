"""``ganad score``: score a user's files with a trained run or saved detector.

Inputs may be image files, folders of images (searched recursively), CSV files
(for tabular models: encoded exactly as the training CSV was) or ``.npy``
arrays. Output is CSV text: one row per sample with its source, the raw score
and the prediction at the detector's threshold. Images are read and scored in
chunks, so a folder larger than memory does not have to fit at once.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ganad.atomic import atomic_write_bytes
from ganad.data.sources import IMAGE_SUFFIXES, find_images, read_csv_rows, read_image_files, read_npy
from ganad.data.transforms import resize_maps, scale_pixels
from ganad.detector import Detector, load
from ganad.errors import ConfigError, DataError, RunExistsError
from ganad.metrics import flag
from ganad.plots import single_heatmap

CHUNK = 512


def _expand(inputs: list[Path]) -> list[tuple[Path, str]]:
    """Each input file with the name its heat map is drawn under (without ``_map.png``).

    A file found in a folder is named after its path inside that folder, parts joined by ``__``
    (``sub/x.png`` -> ``sub__x``): folders searched recursively often hold the same file name in
    several sub-folders, and the input file's name alone would give their maps one name. A file
    given by itself is named after its stem.
    """
    files: list[tuple[Path, str]] = []
    for p in inputs:
        if p.is_dir():
            found = find_images(p)
            if not found:
                raise DataError(f"{p}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            files += [(q, "__".join(q.relative_to(p).with_suffix("").parts)) for q in found]
        elif p.is_file():  # a regular file (a FIFO named x.png would block the reader for ever)
            files.append((p, p.stem))
        elif p.exists():
            raise DataError(f"{p}: not a regular file or folder")
        else:
            raise DataError(f"{p}: no such file or folder")
    return files


def _map_clash(first: str, second: str, target: Path) -> DataError:
    return DataError(
        f"{first} and {second} would both have the heat map {target}; score them with separate --maps "
        "folders, or give the one folder that holds both (maps are then named after their sub-folders)"
    )


#: how ``ganad score --maps`` writes each map: a PNG picture, or the raw float map as a .npy array
MAP_FORMATS = ("png", "npy")


def _check_map_names(files: list[tuple[Path, str]], maps_dir: Path, fmt: str = "png") -> None:
    """Refuse, before any map is drawn, image files whose heat maps would share a name.

    Only files given as separate inputs can clash (``a/x.png b/x.png``, or ``a/ b/`` both holding
    ``x.png``); one map replacing another drawn in the same call would lose it without a word.
    """
    seen: dict[str, Path] = {}
    for f, label in files:
        if f.suffix.lower() in IMAGE_SUFFIXES:
            if label in seen:
                raise _map_clash(str(seen[label]), str(f), maps_dir / f"{label}_map.{fmt}")
            seen[label] = f


def _batches(
    det: Detector, files: list[tuple[Path, str]], converted: list[Path]
) -> Iterator[tuple[list[str], list[str], np.ndarray]]:
    """(names, map names, raw samples) chunks in input order.

    Image files are converted to the model's channel count (colour to grey for a 1-channel model,
    grey to colour for a 3-channel one), as ``--channels`` converts training folders; each file
    converted is appended to ``converted`` so the caller can say so in one line.
    """
    pre = det.preprocessor_
    images = [(f, label) for f, label in files if f.suffix.lower() in IMAGE_SUFFIXES]
    for f, label in files:
        suffix = f.suffix.lower()
        if suffix == ".npy":
            arr = read_npy(f)  # memory-mapped: only the chunk being scored is read
            for i in range(0, len(arr), CHUNK):
                rows = range(i, min(i + CHUNK, len(arr)))
                yield [f"{f}[{j}]" for j in rows], [f"{label}_{j}" for j in rows], np.asarray(arr[i : i + CHUNK])
        elif suffix == ".csv":
            if pre.kind != "tabular":
                raise DataError(f"{f}: this detector was trained on images, not CSV rows")
            rows, lines = read_csv_rows(f, det.meta_.get("data_info", {}) if hasattr(det, "meta_") else {})
            yield [f"{f}:{line}" for line in lines], [f"{label}_{line}" for line in lines], rows
        elif suffix not in IMAGE_SUFFIXES:
            raise DataError(f"{f}: unsupported input type '{suffix}' (images, folders, .csv or .npy)")
    if images:
        if pre.kind != "image":
            raise DataError(f"{images[0][0]}: this detector was trained on tabular rows, not images")
        for i in range(0, len(images), CHUNK):
            paths, labels = zip(*images[i : i + CHUNK], strict=True)
            raw = read_image_files(paths, size=pre.image_size, channels=pre.channels, converted=converted)
            yield [str(p) for p in paths], list(labels), raw


def _at_input_size(det: Detector, path: Path, img: np.ndarray, amap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An image file's map at the file's own resolution, over the file's own pixels (a 1024x1024
    part gets a 1024x1024 map, not the model's 64x64), as :meth:`Detector.anomaly_map` gives; rows
    of a ``.npy`` file keep the model's resolution (their raw pixels were never an image file)."""
    if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
        return img, amap
    pre = det.preprocessor_
    original = read_image_files([path], channels=pre.channels)  # converted as scored: same channels
    if tuple(original.shape[2:]) == tuple(amap.shape):
        return img, amap
    return scale_pixels(original[0].astype(np.float32)), resize_maps(amap[None], original.shape[2:])[0]


def score_paths(
    run: Path,
    inputs: list[Path],
    *,
    maps_dir: Path | None = None,
    maps_format: str = "png",
    output: Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    threshold: float | None = None,
    announce: Callable[[str], None] | None = None,
) -> str:
    """Score ``inputs`` with the detector in ``run``; returns (and optionally writes) the CSV.

    Predictions use the threshold saved with the run (the value its ``scores.csv`` and
    ``metrics.json`` used), or ``threshold`` when given; ``announce`` receives one line saying
    which value and rule, once every input is scored, and a line counting the image files whose
    channels were converted to the model's.
    """
    if output is not None and output.exists() and not overwrite:
        raise RunExistsError(f"{output} already exists; pass --overwrite to replace it")
    det = load(run)
    det.verbose = progress
    if threshold is not None:
        det.threshold_ = threshold

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["input", "score", "predicted"])
    files = _expand(inputs)
    if maps_format not in MAP_FORMATS:
        raise ConfigError(f"maps format must be one of {', '.join(MAP_FORMATS)}, got {maps_format!r}")
    if maps_dir is not None:
        _check_map_names(files, maps_dir, maps_format)
    drawn: dict[Path, str] = {}  # map -> input, this call: a .npy row and an image can still share a name
    converted: list[Path] = []
    for names, labels, raw in _batches(det, files, converted):
        what = names[0] if len(names) == 1 else f"{names[0]} (and {len(names) - 1} more)"
        x = det.transform_input(raw, what=what)  # once: scored, then drawn
        scores = det.scores_of(x, what=what)
        for name, s, p in zip(names, scores, flag(scores, det.threshold_), strict=True):
            w.writerow([name, f"{s:.6g}", int(p)])
        if maps_dir is not None and det.preprocessor_.kind == "image":
            maps = det.maps_of(x)
            if maps is not None:
                for name, label, img, amap, s in zip(names, labels, x, maps, scores, strict=True):
                    target = maps_dir / f"{label}_map.{maps_format}"
                    if target in drawn:
                        raise _map_clash(drawn[target], name, target)
                    if target.exists() and not overwrite:
                        raise RunExistsError(f"{target} already exists; pass --overwrite to replace it")
                    img, amap = _at_input_size(det, Path(name), img, amap)
                    if maps_format == "npy":  # the float map itself
                        buf_npy = io.BytesIO()
                        np.save(buf_npy, np.asarray(amap, dtype=np.float32))
                        atomic_write_bytes(target, buf_npy.getvalue())
                    else:
                        single_heatmap(target, img, amap, float(s))
                    drawn[target] = name
    text = buf.getvalue()
    if output is not None:
        atomic_write_bytes(output, text.encode())
    if announce is not None and converted:  # after the scores: a failure stays the one line it is
        kind = "colour" if det.preprocessor_.channels == 1 else "grey"
        to = "grey" if det.preprocessor_.channels == 1 else "colour"
        announce(
            f"note: {len(converted)} {kind} image(s) converted to {to} for this {det.preprocessor_.channels}-channel "
            f"model (first: {converted[0]})"
        )
    if announce is not None:
        announce(f"threshold {det.threshold_:.6g} ({det.threshold_description_}; rule {det.threshold_rule_})")
    return text
