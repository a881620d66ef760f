"""Preprocessing that travels with a trained model.

A saved detector must turn a user's raw array (or folder, or CSV) into exactly
what it was trained on, so the preprocessing is a small JSON-able object saved
beside the weights: for images the target size and channel count (pixels go
to [-1, 1], the range of the generators' Tanh); for rows the min-max range
fitted on *training* rows only (EGBAD's MinMaxScaler practice), or no scaling
at all (``row_scaling="none"``): the EGBAD authors' code fits a MinMaxScaler
but trains on the unscaled rows, so their published KDD table is only
reproducible on raw rows (docs/models.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from ganad.data.types import InputSpec
from ganad.errors import ConfigError, DataError
from ganad.resources import require

#: how tabular rows are scaled before training and scoring (see :meth:`Preprocessor.fit`); the run
#: setting ``row_scaling`` takes its choices from here
ROW_SCALINGS = ("minmax", "none")


def resize_images(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize uint8 (N, C, H, W) images with PIL's antialiased bilinear filter."""
    n, c, h, w = x.shape
    if (h, w) == tuple(size):
        return x
    out = np.empty((n, c, size[0], size[1]), dtype=np.uint8)
    for i in range(n):
        for j in range(c):
            img = Image.fromarray(x[i, j]).resize((size[1], size[0]), Image.BILINEAR)
            out[i, j] = np.asarray(img)
    return out


def resize_maps(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Float (N, H, W) heat maps to ``size`` (bilinear): a map at the resolution of the input it explains."""
    import torch
    import torch.nn.functional as F

    if tuple(maps.shape[1:]) == tuple(size):
        return maps
    t = torch.as_tensor(maps, dtype=torch.float32)[:, None]
    return F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False)[:, 0].numpy()


def as_nchw(x: np.ndarray, channels: int | None = None, *, what: str = "X") -> np.ndarray:
    """Bring (N, H, W), (N, C, H, W) or (N, H, W, C) image arrays to (N, C, H, W).

    A trailing axis of size 1 or 3 with a larger axis 1 is read as channels-last;
    ``channels`` (the fitted model's) settles the ambiguous cases.
    """
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        raise DataError(f"{what} has shape {x.shape}; images must be (N, H, W), (N, C, H, W) or (N, H, W, C)")
    c_first, c_last = x.shape[1], x.shape[3]
    if channels is not None:
        if c_first == channels:
            return x
        if c_last == channels:
            return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        raise DataError(f"{what} has shape {x.shape} but the model expects {channels} channel(s)")
    if c_first in (1, 3):
        return x
    if c_last in (1, 3):
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    raise DataError(f"{what} has shape {x.shape}: cannot tell which axis holds the 1 or 3 channels")


#: the largest pixel value of float images a model reads: 1.0 ([0, 1], the default) or 255.0
FLOAT_RANGES = (1.0, 255.0)


def float_range_of(x: np.ndarray) -> float:
    """The float pixel range training images use: fixed once, at fit, and saved with the model.

    uint8 training images leave floats at the documented [0, 1]. Float training images in
    [0, 1] are read as [0, 1], float images up to 255 as [0, 255]: decided on the whole
    training set once, never again on the samples being scored (a later call's scale must not
    depend on what else is in it).
    """
    if x.dtype == np.uint8 or not np.issubdtype(x.dtype, np.number):
        return 1.0
    hi = float(np.nanmax(x)) if x.size else 1.0
    return 1.0 if hi <= 1.0 else 255.0


def to_uint8(x: np.ndarray, float_range: float = 1.0, *, what: str = "X") -> np.ndarray:
    """Images as uint8: uint8 kept, floats in [0, ``float_range``] scaled to 0..255.

    The range is the model's (see :func:`float_range_of`), never guessed from ``x``: a
    sample's pixels, and so its score, do not depend on the other samples in the call.
    Values outside the range are refused, naming the first sample at fault.
    """
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{what} has dtype {x.dtype}; images must be numeric")
    xf = x.astype(np.float64)
    bad = ~np.isfinite(xf)
    if bad.any():
        raise DataError(f"{what}[{int(np.argwhere(bad)[0][0])}] contains NaN or inf")
    out = (xf < 0) | (xf > float_range)
    if out.any():
        i = int(np.argwhere(out)[0][0])
        raise DataError(
            f"{what}[{i}] has values in [{xf[i].min():g}, {xf[i].max():g}]; this model reads float images in "
            f"[0, {float_range:g}] (fixed when it was fitted): pass uint8 images or floats in [0, {float_range:g}]"
        )
    return np.round(xf * (255.0 / float_range)).astype(np.uint8)


def image_size_pair(image_size: Any, what: str = "image_size") -> tuple[int, int] | None:
    """``None``, a positive int or two positive ints as (H, W); anything else a ConfigError naming it."""
    if image_size is None:
        return None
    vals = image_size if isinstance(image_size, list | tuple) else [image_size]
    if len(vals) == 1 and not isinstance(image_size, list | tuple):
        vals = [image_size, image_size]
    ok = len(vals) == 2 and all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) and 0 < int(v) <= MAX_IMAGE_SIDE for v in vals
    )
    if not ok:
        raise ConfigError(
            f"{what} must be a positive whole number of pixels up to {MAX_IMAGE_SIDE} (or two of them, H and W), "
            f"got {image_size!r}"
        )
    return int(vals[0]), int(vals[1])


#: the largest image side a model is built for: far above any data set here, small enough that a typo
#: (``--image-size 80000``) is refused before anything is allocated
MAX_IMAGE_SIDE = 4096


def scale_pixels(x: Any) -> Any:
    """uint8-valued pixels (as float32, NumPy or torch) -> the models' [-1, 1]; ``ganad export`` bakes the same."""
    return x / 127.5 - 1.0


@dataclass
class Preprocessor:
    """Raw arrays -> float32 model inputs, fitted once and saved with the model."""

    kind: str  # "image" | "tabular"
    image_size: tuple[int, int] | None = None
    channels: int | None = None
    col_min: list[float] = field(default_factory=list)
    col_max: list[float] = field(default_factory=list)
    row_scaling: str = "minmax"  # tabular only: "minmax" (to [0, 1] on training rows) or "none"
    float_range: float = 1.0  # images only: float pixels span [0, float_range] (see float_range_of)

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        kind: str,
        image_size: int | tuple[int, int] | None = None,
        row_scaling: str = "minmax",
    ) -> Preprocessor:
        if kind == "image":
            x = as_nchw(x)
            size = image_size_pair(image_size) or (int(x.shape[2]), int(x.shape[3]))
            return cls("image", image_size=size, channels=int(x.shape[1]), float_range=float_range_of(x))
        if row_scaling not in ROW_SCALINGS:
            raise ConfigError(f"row_scaling must be one of {', '.join(ROW_SCALINGS)}, got {row_scaling!r}")
        x = _check_rows(x, None)
        lo, hi = x.min(axis=0), x.max(axis=0)
        return cls(
            "tabular", col_min=lo.astype(float).tolist(), col_max=hi.astype(float).tolist(), row_scaling=row_scaling
        )

    @property
    def spec(self) -> InputSpec:
        if self.kind == "image":
            assert self.image_size is not None and self.channels is not None
            return InputSpec("image", (self.channels, *self.image_size))
        return InputSpec("tabular", (len(self.col_min),))

    def transform(self, x: np.ndarray, *, what: str = "X") -> np.ndarray:
        """Raw samples -> float32 array shaped like ``spec`` (images in [-1, 1])."""
        if self.kind == "image":
            assert self.image_size is not None and self.channels is not None
            x = np.asarray(x)
            h, w = self.image_size
            # a resized uint8 copy and its float32 copy (5 bytes a pixel), plus the float64 check of float input
            per_sample = self.channels * h * w * 5 + (x[:1].size * 8 if x.dtype != np.uint8 else 0)
            require(
                len(x) * per_sample,
                f"preparing {len(x)} images at {h}x{w} ({what})",
                "lower the image size (--image-size) or score fewer images at a time",
            )
            x = to_uint8(as_nchw(x, self.channels, what=what), self.float_range, what=what)
            if x.shape[1] != self.channels:
                raise DataError(f"{what} has {x.shape[1]} channel(s) but the model expects {self.channels}")
            x = resize_images(x, self.image_size)
            return scale_pixels(x.astype(np.float32))
        x = _check_rows(np.asarray(x), len(self.col_min), what=what)
        if self.row_scaling == "none":
            return x
        lo, span = self.row_affine()
        return ((x - lo) / span).astype(np.float32)

    def row_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, span) with model rows = (raw - lo) / span: the one statement of the row scaling.

        :meth:`transform` applies it in NumPy and ``ganad export`` bakes it into the
        graph, so both compute the same numbers. "none" is lo 0, span 1.
        """
        dim = len(self.col_min)
        if self.row_scaling == "none":
            return np.zeros(dim, np.float32), np.ones(dim, np.float32)
        lo = np.asarray(self.col_min, dtype=np.float32)
        span = np.asarray(self.col_max, dtype=np.float32) - lo
        span[span == 0] = 1.0  # constant training columns map to 0, like sklearn's MinMaxScaler
        return lo, span

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind}
        if self.kind == "image":
            d.update(image_size=list(self.image_size or ()), channels=self.channels, float_range=self.float_range)
        else:
            d.update(col_min=self.col_min, col_max=self.col_max, row_scaling=self.row_scaling)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessor:
        """Rebuild from :meth:`to_dict`, checking every value (it comes from a file a user can edit).

        Raises ValueError naming the bad entry; the loader reports it as a
        CheckpointError naming the file.
        """
        kind = d.get("kind")
        if kind == "image":
            size, channels = d.get("image_size"), d.get("channels")
            if not (isinstance(size, list | tuple) and len(size) == 2 and all(_is_pos_int(v) for v in size)):
                raise ValueError(f"image_size must be two positive integers, got {size!r}")
            if channels not in (1, 3) or isinstance(channels, bool):
                raise ValueError(f"channels must be 1 or 3, got {channels!r}")
            float_range = d.get("float_range", 1.0)  # models saved before the field read floats as [0, 1]
            if float_range not in FLOAT_RANGES or isinstance(float_range, bool):
                raise ValueError(f"float_range must be one of {FLOAT_RANGES}, got {float_range!r}")
            return cls(
                "image", image_size=(int(size[0]), int(size[1])), channels=int(channels), float_range=float(float_range)
            )
        if kind == "tabular":
            lo, hi = d.get("col_min"), d.get("col_max")
            for name, v in (("col_min", lo), ("col_max", hi)):
                if not (isinstance(v, list) and v and all(_is_finite_number(x) for x in v)):
                    raise ValueError(f"{name} must be a non-empty list of finite numbers")
            if len(lo) != len(hi):
                raise ValueError(f"col_min has {len(lo)} values but col_max has {len(hi)}")
            scaling = d.get("row_scaling", "minmax")  # models saved before the option scaled min-max
            if scaling not in ROW_SCALINGS:
                raise ValueError(f"row_scaling must be one of {', '.join(ROW_SCALINGS)}, got {scaling!r}")
            return cls("tabular", col_min=[float(x) for x in lo], col_max=[float(x) for x in hi], row_scaling=scaling)
        raise ValueError(f"kind must be 'image' or 'tabular', got {kind!r}")


def _is_pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _is_finite_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and bool(np.isfinite(v))


def _check_rows(x: np.ndarray, dim: int | None, *, what: str = "X") -> np.ndarray:
    if x.ndim != 2:
        raise DataError(f"{what} has shape {x.shape}; tabular data must be 2-D (rows, features)")
    if dim is not None and x.shape[1] != dim:
        raise DataError(f"{what} has {x.shape[1]} features, but the model is expecting {dim} features as input")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{what} has dtype {x.dtype}; rows must be numeric")
    x = x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        r, c = map(int, np.argwhere(bad)[0])
        raise DataError(f"{what} has a NaN or inf value at row {r}, column {c}")
    return x
