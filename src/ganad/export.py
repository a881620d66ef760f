"""Export a fitted detector as one ONNX or TorchScript file, with its preprocessing inside the graph.

A deployment target that is not Python gets what ``ganad score`` computes from the input a user
has: images as uint8 ``(N, C, H, W)`` at the model's size, rows as float ``(N, D)`` in their raw
units. The graph scales pixels to [-1, 1] or rows by the training min-max range, runs the
single-pass scorer with the weights the detector scores with (EGBAD's weight average is baked in)
and returns ``score`` (N,) and, for images, ``map`` (N, H, W). The threshold, its rule and the
input description travel in the file's metadata (ONNX ``metadata_props``; a ``ganad.json`` extra
file in TorchScript), so a deployment flags exactly what ``ganad score`` flags.

Resizing is not in the graph: PIL's antialiased bilinear filter, which ganad uses, has no exact
ONNX counterpart, so inputs must already be at the model's size (the metadata says which).
AnoGAN's latent search is not one graph: :func:`export_parts` writes its generator and discriminator
instead (what a deployment needs to run the search itself). The baselines whose scorer is not a torch
graph are refused, with why.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from ganad.atomic import atomic_write_bytes
from ganad.data.transforms import Preprocessor, scale_pixels
from ganad.errors import ConfigError, RunExistsError
from ganad.version import __version__

if TYPE_CHECKING:
    from ganad.detector import Detector

#: the formats ``ganad export`` writes, with their file suffix
FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
#: ONNX opset the graphs are written for (onnxruntime 1.16+ runs it)
OPSET = 18


class Deployable(nn.Module):
    """Raw input -> (score, map): the detector's preprocessing and scorer as one module."""

    def __init__(self, model: nn.Module, pre: Preprocessor) -> None:
        super().__init__()
        self.model = model
        self.image = pre.kind == "image"
        lo, span = pre.row_affine() if not self.image else (np.zeros(1, np.float32), np.ones(1, np.float32))
        self.register_buffer("lo", torch.from_numpy(lo))
        self.register_buffer("span", torch.from_numpy(span))

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        x = x.to(torch.float32)
        x = scale_pixels(x) if self.image else (x - self.lo) / self.span
        score = self.model.score(x)
        amap = self.model.anomaly_map(x)
        return (score,) if amap is None else (score, amap)


def _baked(model: nn.Module) -> nn.Module:
    """A CPU copy in eval mode scoring with fixed weights: a weight average (EGBAD) is copied into the
    weights and removed, since swapping weights in and out is not an operation a graph can hold."""
    m = copy.deepcopy(model).cpu().eval()
    if getattr(m, "ema", None) is not None:
        with m.averaged_weights():
            state = {k: v.detach().clone() for k, v in m.state_dict().items()}
        m.load_state_dict(state)
        m.ema = None
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def metadata(det: Detector, outputs: list[str]) -> dict[str, Any]:
    """What a deployment needs beside the graph: the input it takes, the outputs and the threshold."""
    pre = det.preprocessor_
    if pre.kind == "image":
        c, h, w = det.model_.spec.shape
        inp = {"dtype": "uint8", "shape": ["N", c, h, w], "layout": "NCHW, pixels 0-255, at the model's size"}
    else:
        inp = {"dtype": "float32", "shape": ["N", len(pre.col_min)], "layout": "raw rows, columns as trained"}
    return {
        "ganad_version": __version__,
        "model": det.model_name,
        "input": inp,
        "outputs": {
            "score": "(N,): higher = more anomalous",
            "map": "(N, H, W) per pixel" if pre.kind == "image" else "(N, D) per feature",
        }
        if "map" in outputs
        else {"score": "(N,): higher = more anomalous"},
        "threshold": det.threshold_,
        "threshold_rule": det.threshold_rule_,
        "threshold_description": det.threshold_description_,
        "flag": "anomaly where score >= threshold",
        "preprocessing": pre.to_dict(),
    }


def export(det: Detector, path: str | Path, fmt: str = "onnx", *, overwrite: bool = False) -> Path:
    """Write ``det`` as one ``fmt`` file at ``path``; refuses to replace a file without ``overwrite``."""
    det._check_fitted()
    if fmt not in FORMATS:
        raise ConfigError(f"export format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    reason = type(det.model_).not_exportable
    if reason:
        raise ConfigError(f"{det.model_name} cannot be exported: {reason}")
    path = Path(path)
    if path.is_dir():
        raise RunExistsError(f"{path} is a folder; name the file to write (e.g. {path / ('model' + FORMATS[fmt])})")
    if path.exists() and not overwrite:
        raise RunExistsError(f"{path} exists; pass --overwrite (overwrite=True) to replace it")
    net = Deployable(_baked(det.model_), det.preprocessor_).eval()
    shape = det.model_.spec.shape
    example = torch.zeros((2, *shape), dtype=torch.uint8 if net.image else torch.float32)
    with torch.no_grad(), _quiet():
        outputs = ["score", "map"][: len(net(example))]
        meta = metadata(det, outputs)
        data = _onnx(net, example, meta, ["input"], outputs) if fmt == "onnx" else _torchscript(net, example, meta)
    atomic_write_bytes(path, data)
    return path


def export_parts(det: Detector, path: str | Path, fmt: str = "onnx", *, overwrite: bool = False) -> dict[str, Path]:
    """For a detector whose score is not one graph (AnoGAN's latent search): one file per net it
    hands over (:meth:`Model.export_parts`), named ``STEM.PART.SUFFIX`` beside ``path``, each with
    the detector's metadata plus the part's inputs and outputs and the search settings. Nets take
    and give samples in model units (images in [-1, 1]); the preprocessing is in the metadata."""
    det._check_fitted()
    if fmt not in FORMATS:
        raise ConfigError(f"export format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    path = Path(path)
    model = _baked(det.model_)
    parts = model.export_parts()
    if not parts:
        raise ConfigError(f"{det.model_name} has no nets to export on their own: {type(det.model_).not_exportable}")
    targets = {name: path.with_name(f"{path.stem}.{name}{FORMATS[fmt]}") for name in parts}
    for target in targets.values():
        if target.exists() and not overwrite:
            raise RunExistsError(f"{target} exists; pass --overwrite (overwrite=True) to replace it")
    for name, (net, example, inputs, outputs) in parts.items():
        meta = {
            **metadata(det, []),
            "part": name,
            "inputs": inputs,
            "outputs": outputs,
            "units": "samples in model units: images in [-1, 1] (pixels / 127.5 - 1), rows as preprocessed",
            "hparams": det.model_.hparams,
            "score": type(det.model_).not_exportable,
        }
        with torch.no_grad(), _quiet():
            net = net.eval()
            data = _onnx(net, example, meta, inputs, outputs) if fmt == "onnx" else _torchscript(net, example, meta)
        atomic_write_bytes(targets[name], data)
    return targets


@contextmanager
def _quiet() -> Iterator[None]:
    """The exporters' deprecation notes and log lines (about torchvision ops ganad never uses) are not
    the user's concern; the file is checked against ganad's own scores in tests/test_export.py."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _onnx(net: nn.Module, example: Tensor, meta: dict[str, Any], inputs: list[str], outputs: list[str]) -> bytes:
    try:
        import onnx  # noqa: F401 (the exporter needs onnx and onnxscript)
        import onnxscript  # noqa: F401
    except ImportError:
        raise ConfigError("ONNX export needs onnx and onnxscript: pip install 'ganad[export]'") from None
    program = torch.onnx.export(  # torch.export-based exporter; the batch size stays free
        net,
        (example,),
        input_names=inputs,
        output_names=outputs,
        dynamic_shapes=({0: torch.export.Dim("N")},),
        opset_version=OPSET,
        dynamo=True,
        verbose=False,
    )
    proto = program.model_proto
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    return proto.SerializeToString()


def _torchscript(net: nn.Module, example: Tensor, meta: dict[str, Any]) -> bytes:
    traced = torch.jit.trace(net, (example,), check_trace=False)
    buf = io.BytesIO()
    torch.jit.save(traced, buf, _extra_files={"ganad.json": json.dumps(meta)})
    return buf.getvalue()
