"""The one kind of object every data source returns.

Images are kept as uint8 arrays (N, C, H, W) and rows as float32 arrays
(N, D) until they reach the device: this keeps MNIST-sized sets small
enough to live whole in (GPU) memory, and makes every source interchangeable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Kind = Literal["image", "tabular"]


@dataclass(frozen=True)
class InputSpec:
    """What a model is built for: images (C, H, W) or rows (D,)."""

    kind: Kind
    shape: tuple[int, ...]

    @property
    def channels(self) -> int:
        return self.shape[0] if self.kind == "image" else 1

    def to_dict(self) -> dict:
        return {"kind": self.kind, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: dict) -> InputSpec:
        return cls(kind=d["kind"], shape=tuple(int(s) for s in d["shape"]))


@dataclass
class ArraySet:
    """Samples plus integer labels.

    Attributes
    ----------
    x : uint8 (N, C, H, W) for images, float32 (N, D) for rows.
    y : int64 (N,) class index (into ``class_names``) for a source; after a
        protocol split, 0 = normal and 1 = anomaly.
    classes : after a protocol split, the source's class index of each sample
        (into ``Split.class_names``), or None. Kept because 0/1 labels hide
        which *kinds* of normal data a split trains on: diagnostics use it to
        tell which training classes (KDD attack types, digits) a collapsed
        generator never produces.
    """

    x: np.ndarray
    y: np.ndarray
    classes: np.ndarray | None = None
    #: ground-truth masks (N, H, W), 1 = anomalous pixel, for image sets that have them (MVTec AD)
    masks: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} samples but y has {len(self.y)}")
        if self.classes is not None and len(self.classes) != len(self.y):
            raise ValueError(f"y has {len(self.y)} samples but classes has {len(self.classes)}")
        if self.masks is not None and len(self.masks) != len(self.y):
            raise ValueError(f"y has {len(self.y)} samples but masks has {len(self.masks)}")

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, idx: np.ndarray) -> ArraySet:
        return ArraySet(
            self.x[idx],
            self.y[idx],
            None if self.classes is None else self.classes[idx],
            None if self.masks is None else self.masks[idx],
        )


@dataclass
class Source:
    """A data set as its publisher splits it (``train`` / ``test``).

    ``feature_names`` and ``categorical`` describe tabular columns *before*
    encoding; ``encoded_names`` the columns of ``x`` after it.
    """

    name: str
    kind: Kind
    train: ArraySet
    test: ArraySet | None
    class_names: list[str]
    feature_names: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def spec(self) -> InputSpec:
        return InputSpec(self.kind, tuple(int(s) for s in self.train.x.shape[1:]))


@dataclass
class Split:
    """The output of a protocol: labels are 0 = normal, 1 = anomaly.

    ``train`` holds normal samples only; ``val`` and ``test`` hold both, and
    ``val`` is always carved from the training side, never from ``test``.
    """

    train: ArraySet
    val: ArraySet
    test: ArraySet
    spec: InputSpec
    description: dict = field(default_factory=dict)
    #: the source's class names, which ``ArraySet.classes`` index
    class_names: list[str] = field(default_factory=list)
