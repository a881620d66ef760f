"""One checkpoint format: safetensors for tensors, JSON for everything else.

Loading never executes code (no pickle anywhere): tensors come from
safetensors, and optimiser hyper-parameters, RNG bookkeeping, the model's
hyper-parameters, input spec and preprocessing come from JSON.

Every write goes to a temporary file (flushed to disk) that is renamed into
place, so a kill mid-write leaves the previous file intact. A checkpoint is
two files; both are fully written under temporary names before either is
renamed, and the JSON records the sha256 of its tensors file, so a pair that
does not belong together (edited weights, weights copied from another run) is
refused on load instead of silently mixing two states. A kill in the
microseconds between the two renames leaves the new tensors and the new JSON
under its temporary name; a resumed run finishes that save
(:func:`remove_stale_temps`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from ganad.atomic import atomic_write_bytes, commit, json_bytes, temp_target, write_temp
from ganad.errors import CheckpointError
from ganad.version import __version__

FORMAT = "ganad-checkpoint-1"


def remove_stale_temps(folder: Path, targets: Collection[str]) -> list[Path]:
    """Delete temporary files a killed writer left in ``folder`` for the files ``targets``; returns them.

    Only temporaries of the named files are touched: a user's own ``.notes.abcd1234.tmp``
    looks the same but is not ours. A checkpoint JSON cut off between :func:`save`'s two
    renames is committed instead (see :func:`_finish_interrupted_save`), so the run resumes
    from that save. Only safe while no other process writes into ``folder``: a resumed run
    (whose folder is locked by the grid runner, or was given to ``--resume``) calls it.
    """
    removed = []
    for f in sorted(folder.glob(".*.tmp")):
        if not f.is_file() or f.is_symlink() or temp_target(f.name) not in targets:
            continue
        if _finish_interrupted_save(folder, f):
            continue
        f.unlink(missing_ok=True)
        removed.append(f)
    return removed


def _finish_interrupted_save(folder: Path, tmp: Path) -> bool:
    """Rename a checkpoint JSON into place if a kill fell between :func:`save`'s two renames.

    ``save`` renames the tensors file first and the JSON second. A kill between them leaves the
    new tensors beside the old JSON (a pair that load refuses) and the new JSON, complete and
    flushed, under its temporary name. When that JSON names the tensors now in place (same file,
    same sha256) and the committed one does not, renaming it finishes the save. Returns whether
    it did; anything else (a half-written file, a save killed before its first rename) is left
    for the caller to delete.
    """
    target = folder / str(temp_target(tmp.name))  # ".checkpoint.json.ab12cd34.tmp" -> checkpoint.json
    if target.suffix != ".json":
        return False
    try:
        meta = json.loads(tmp.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return False
    name = meta.get("tensors_file")
    if not isinstance(name, str) or Path(name).name != name:
        return False
    tensors = folder / name
    if tensors.with_suffix(".json") != target or not tensors.is_file():
        return False
    digest = hashlib.sha256(tensors.read_bytes()).hexdigest()
    if digest != meta.get("tensors_sha256"):
        return False
    try:
        committed = json.loads(target.read_text())
    except (OSError, ValueError):
        committed = None
    if isinstance(committed, dict) and committed.get("tensors_sha256") == digest:
        return False  # the pair in place already belongs together
    os.replace(tmp, target)
    return True


def tensor_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    """The safetensors encoding of ``tensors`` (moved to the CPU, made contiguous)."""
    return save_bytes({k: v.detach().contiguous().cpu() for k, v in tensors.items()})


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    atomic_write_bytes(path, tensor_bytes(tensors))


def optimizer_state(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser's state_dict into flat tensors and a JSON-able rest."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"{prefix}.{idx}.{key}"] = val
            else:
                scalars.setdefault(str(idx), {})[key] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer_state(opt: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, val in tensors.items():
        if name.startswith(prefix + "."):
            idx, key = name[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(idx), {})[key] = val
    for idx, extra in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(extra)
    groups = meta["param_groups"]
    for g in groups:  # JSON turned tuples into lists
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    opt.load_state_dict({"state": state, "param_groups": groups})


def model_tensors(model: torch.nn.Module, with_optimizers: bool) -> tuple[dict[str, torch.Tensor], dict]:
    """All of a model's tensors (weights, buffers and, optionally, optimiser state)."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    optim_meta: dict[str, Any] = {}
    if with_optimizers:
        for name, opt in getattr(model, "optimizers", {}).items():
            t, m = optimizer_state(opt, f"optim.{name}")
            tensors.update(t)
            optim_meta[name] = m
    return tensors, optim_meta


def save(
    path: Path,
    model: torch.nn.Module,
    meta: dict[str, Any],
    *,
    with_optimizers: bool = False,
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write ``path`` (.safetensors) and ``path.with_suffix('.json')``; JSON last, so it marks completion."""
    tensors, optim_meta = model_tensors(model, with_optimizers)
    if extra_tensors:
        tensors.update({f"extra.{k}": v for k, v in extra_tensors.items()})
    data = tensor_bytes(tensors)
    meta = {
        **meta,
        "format": FORMAT,
        "ganad_version": __version__,
        "optimizers": optim_meta,
        "tensors_file": path.name,
        "tensors_sha256": hashlib.sha256(data).hexdigest(),
    }
    jpath = path.with_suffix(".json")
    tmp_tensors = write_temp(path, data)
    try:
        tmp_json = write_temp(jpath, json_bytes(meta))
    except BaseException:
        tmp_tensors.unlink(missing_ok=True)
        raise
    commit(tmp_tensors, path)  # both files are on disk: only two renames separate old and new pair
    commit(tmp_json, jpath)


def read_meta(path: Path) -> dict[str, Any]:
    """The JSON half of a checkpoint, validated enough to trust its fields."""
    jpath = path.with_suffix(".json")
    if not jpath.is_file():
        raise CheckpointError(f"{jpath}: checkpoint metadata not found")
    try:
        meta = json.loads(jpath.read_text())
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError, and a 5,000-digit integer (int limit)
        raise CheckpointError(f"{jpath}: not valid JSON ({e})") from None
    except RecursionError:  # arrays nested 100,000 deep: no checkpoint of ours nests more than a few levels
        raise CheckpointError(f"{jpath}: not a ganad checkpoint (its JSON nests too deeply)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{jpath}: not a ganad checkpoint (format {meta.get('format')!r}, expected {FORMAT!r})"
            if isinstance(meta, dict)
            else f"{jpath}: not a ganad checkpoint"
        )
    written = str(meta.get("ganad_version", "unknown"))
    if _release_line(written) != _release_line(__version__):
        raise CheckpointError(
            f"{jpath}: written by ganad {written}, but this is ganad {__version__}; "
            f"load it with ganad {'.'.join(_release_line(written))}.x or retrain"
        )
    return meta


def _release_line(version: str) -> tuple[str, ...]:
    """Versions that share a release line read each other's checkpoints (major, and minor while 0.x)."""
    parts = version.split(".")
    return tuple(parts[:2]) if parts[0] == "0" else tuple(parts[:1])


def read_tensors(path: Path, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of ``path``; with ``sha256`` (recorded at save time) the file must match it."""
    data = _read_weights(path)
    tensors = _parse_weights(path, data)
    _check_sha256(path, data, sha256)
    return tensors


def _read_weights(path: Path) -> bytes:
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint weights not found")
    try:
        return path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: unreadable weights file ({e})") from None


def _parse_weights(path: Path, data: bytes) -> dict[str, torch.Tensor]:
    try:
        return load_bytes(data)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable or truncated weights file ({e})") from None


def _check_sha256(path: Path, data: bytes, sha256: str | None) -> None:
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise CheckpointError(
            f"{path}: weights do not match {path.with_suffix('.json').name} (their sha256 differs from the one "
            "recorded when it was saved): the file was modified, copied from another checkpoint, or cut short"
        )


def load_into(
    model: torch.nn.Module, path: Path, meta: dict[str, Any], *, with_optimizers: bool = False
) -> dict[str, torch.Tensor]:
    """Load weights (and optimiser state) into ``model``; returns the ``extra.*`` tensors."""
    data = _read_weights(path)
    tensors = _parse_weights(path, data)
    state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    own = model.state_dict()
    _check_layout(path, model, {k: tuple(v.shape) for k, v in state.items()})
    for k, v in state.items():
        if own[k].dtype != v.dtype:
            raise CheckpointError(f"{path}: tensor '{k}' is {v.dtype}, the model expects {own[k].dtype}")
    recorded = meta.get("tensors_sha256")
    if not (isinstance(recorded, str) and len(recorded) == 64):  # required: without it any weights would pass
        raise CheckpointError(f"{path.with_suffix('.json')}: no valid 'tensors_sha256' recorded for {path.name}")
    _check_sha256(path, data, recorded)  # after the checks above, which say more when they fail
    model.load_state_dict(state)
    if with_optimizers:
        for name, opt in getattr(model, "optimizers", {}).items():
            if name not in meta.get("optimizers", {}):
                raise CheckpointError(f"{path}: no state for optimiser '{name}'")
            try:
                load_optimizer_state(opt, f"optim.{name}", tensors, meta["optimizers"][name])
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise CheckpointError(
                    f"{path}: state of optimiser '{name}' is damaged ({type(e).__name__}: {e})"
                ) from None
    return {k[len("extra.") :]: v for k, v in tensors.items() if k.startswith("extra.")}


def check_fits(model: torch.nn.Module, path: Path) -> None:
    """Refuse weights not written for ``model``, reading only the header of ``path``.

    Meant for a model built on the meta device from an edited or foreign
    model.json: its sizes (``nz``, ``width``, the input shape) then cost no
    memory, and they must match the tensors in the file before the real model,
    whose size they set, is allocated. A checkpoint thus never makes ganad
    allocate much more than the weights file holds.
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            names = f.keys()  # a safe_open handle is not iterable itself
            shapes = {k[len("model.") :]: tuple(f.get_slice(k).get_shape()) for k in names if k.startswith("model.")}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable or truncated weights file ({e})") from None
    _check_layout(path, model, shapes)


def _check_layout(path: Path, model: torch.nn.Module, shapes: dict[str, tuple[int, ...]]) -> None:
    """The file's tensor names and shapes (``shapes``, without the ``model.`` prefix) are ``model``'s.

    A model whose buffer sizes depend on its training data (a baseline's reference rows)
    first resizes them to the file's within its own bounds (``adopt_shapes``).
    """
    if hasattr(model, "adopt_shapes"):
        model.adopt_shapes(shapes)
    own = model.state_dict()
    missing = sorted(set(own) - set(shapes))
    unexpected = sorted(set(shapes) - set(own))
    built = _describe_model(model)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights were not written for {built} (missing: {missing[:3]}, unexpected: {unexpected[:3]})"
        )
    for k, shape in shapes.items():
        if tuple(own[k].shape) != shape:
            raise CheckpointError(
                f"{path}: weights were not written for {built}: tensor '{k}' has shape {shape}, "
                f"the model expects {tuple(own[k].shape)}"
            )


def _describe_model(model: torch.nn.Module) -> str:
    """'a ganomaly model for image input (1, 16, 16)': what the JSON half built, for error messages."""
    spec = getattr(model, "spec", None)
    name = getattr(model, "name", type(model).__name__)
    return f"a {name} model for {spec.kind} input {tuple(spec.shape)}" if spec is not None else f"a {name} model"


def differences(written: Any, expected: Any, prefix: str = "") -> list[str]:
    """Where two JSON-like values differ, as ``'spec.shape: [1, 16, 16] (checkpoint) vs [1, 32, 32]'`` lines.

    For messages that must say *what* differs between a checkpoint and what
    is asked of it (model, hyper-parameters, input shape), not just that it does.
    """
    if isinstance(written, dict) and isinstance(expected, dict):
        out: list[str] = []
        for k in sorted(set(written) | set(expected), key=str):
            out += differences(written.get(k), expected.get(k), f"{prefix}{k}.")
        return out
    if isinstance(written, list | tuple) and isinstance(expected, list | tuple):
        written, expected = list(written), list(expected)
    if written != expected:
        return [f"{prefix.rstrip('.')}: {written!r} (checkpoint) vs {expected!r}"]
    return []
