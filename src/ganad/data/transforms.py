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

from ganad.config import ROW_SCALINGS
from ganad.data.types import InputSpec
from ganad.errors import ConfigError, DataError


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


def to_uint8(x: np.ndarray, *, what: str = "X") -> np.ndarray:
    """Images as uint8: uint8 kept, floats in [0, 1] scaled by 255, other ranges rejected."""
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{what} has dtype {x.dtype}; images must be numeric")
    xf = x.astype(np.float64)
    if not np.isfinite(xf).all():
        raise DataError(f"{what} contains NaN or inf")
    lo, hi = float(xf.min()), float(xf.max())
    if lo >= 0 and hi <= 1:
        return np.round(xf * 255).astype(np.uint8)
    if lo >= 0 and hi <= 255:
        return np.round(xf).astype(np.uint8)
    raise DataError(f"{what} values span [{lo:g}, {hi:g}]; images must be uint8 or floats in [0, 1]")


@dataclass
class Preprocessor:
    """Raw arrays -> float32 model inputs, fitted once and saved with the model."""

    kind: str  # "image" | "tabular"
    image_size: tuple[int, int] | None = None
    channels: int | None = None
    col_min: list[float] = field(default_factory=list)
    col_max: list[float] = field(default_factory=list)
    row_scaling: str = "minmax"  # tabular only: "minmax" (to [0, 1] on training rows) or "none"

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
            if image_size is None:
                size = (x.shape[2], x.shape[3])
            elif isinstance(image_size, int):
                size = (image_size, image_size)
            else:
                size = (int(image_size[0]), int(image_size[1]))
            return cls("image", image_size=size, channels=int(x.shape[1]))
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
            x = to_uint8(as_nchw(np.asarray(x), self.channels, what=what), what=what)
            if x.shape[1] != self.channels:
                raise DataError(f"{what} has {x.shape[1]} channel(s) but the model expects {self.channels}")
            assert self.image_size is not None
            x = resize_images(x, self.image_size)
            return (x.astype(np.float32) / 127.5) - 1.0
        x = _check_rows(np.asarray(x), len(self.col_min), what=what)
        if self.row_scaling == "none":
            return x
        lo = np.asarray(self.col_min, dtype=np.float32)
        span = np.asarray(self.col_max, dtype=np.float32) - lo
        span[span == 0] = 1.0  # constant training columns map to 0, like sklearn's MinMaxScaler
        return ((x - lo) / span).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind}
        if self.kind == "image":
            d.update(image_size=list(self.image_size or ()), channels=self.channels)
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
            return cls("image", image_size=(int(size[0]), int(size[1])), channels=int(channels))
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
        raise DataError(f"{what} has {x.shape[1]} features but the model was fitted on {dim}")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{what} has dtype {x.dtype}; rows must be numeric")
    x = x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        r, c = map(int, np.argwhere(bad)[0])
        raise DataError(f"{what} has a NaN or inf value at row {r}, column {c}")
    return x
