"""One checkpoint format: safetensors for tensors, JSON for everything else.

Loading never executes code (no pickle anywhere): tensors come from
safetensors, and optimiser hyper-parameters, RNG bookkeeping, the model's
hyper-parameters, input spec and preprocessing come from JSON. Every write
goes to a temporary file that is renamed into place, so a kill mid-write
leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ganad import __version__
from ganad.errors import CheckpointError

FORMAT = "ganad-checkpoint-1"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder + rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=_json_default) + "\n").encode())


def _json_default(o: Any) -> Any:
    if isinstance(o, tuple):
        return list(o)
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    meta = {**meta, "format": FORMAT, "ganad_version": __version__, "optimizers": optim_meta, "tensors_file": path.name}
    atomic_save_tensors(path, tensors)
    atomic_write_json(path.with_suffix(".json"), meta)


def read_meta(path: Path) -> dict[str, Any]:
    """The JSON half of a checkpoint, validated enough to trust its fields."""
    jpath = path.with_suffix(".json")
    if not jpath.is_file():
        raise CheckpointError(f"{jpath}: checkpoint metadata not found")
    try:
        meta = json.loads(jpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{jpath}: not valid JSON ({e})") from None
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


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint weights not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable or truncated weights file ({e})") from None


def load_into(
    model: torch.nn.Module, path: Path, meta: dict[str, Any], *, with_optimizers: bool = False
) -> dict[str, torch.Tensor]:
    """Load weights (and optimiser state) into ``model``; returns the ``extra.*`` tensors."""
    tensors = read_tensors(path)
    state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not match the model (missing: {missing[:3]}, unexpected: {unexpected[:3]})"
        )
    for k, v in state.items():
        if own[k].shape != v.shape:
            raise CheckpointError(
                f"{path}: tensor '{k}' has shape {tuple(v.shape)}, model expects {tuple(own[k].shape)}"
            )
    model.load_state_dict(state)
    if with_optimizers:
        for name, opt in getattr(model, "optimizers", {}).items():
            if name not in meta.get("optimizers", {}):
                raise CheckpointError(f"{path}: no state for optimiser '{name}'")
            load_optimizer_state(opt, f"optim.{name}", tensors, meta["optimizers"][name])
    return {k[len("extra.") :]: v for k, v in tensors.items() if k.startswith("extra.")}
