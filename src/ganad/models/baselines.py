"""Non-GAN baselines: what a GAN detector's number must beat to mean anything.

On KDD Cup 99 a 1-nearest-neighbour distance gets AUROC 0.996 and the L1
distance to the median row reproduces the collapsed GAN detectors' numbers
(issue 16), so every table carries these rows beside the GAN detectors. They
are detectors of the same contract (registry, API, CLI, grids, checkpoints)
but are fitted in one pass over the training tensor instead of an epoch loop
(``fits_in_one_pass``, see :func:`ganad.engine._fit_once`):

``pca``        squared reconstruction error after projecting on the principal
               components (scikit-learn ``PCA``; components and mean kept as buffers)
``knn``        distance to the k-th nearest training row (Ramaswamy et al. 2000),
               reference rows kept as a buffer (seeded subsample, ``max_reference``)
``iforest``    Isolation Forest (Liu et al. 2008, scikit-learn ``IsolationForest``)
``median-l1``  ‖x − median_train‖₁, the trivial statistic collapsed detectors reduce to

Images are flattened to rows. Every state is a flat dict of tensors, so a
saved baseline loads from safetensors without pickle; the Isolation Forest,
whose trees are not tensors, keeps its (capped) training rows and its seed
and re-fits the same forest deterministically on first use after loading.
Scores are per sample: no score depends on the other samples of its batch.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import Tensor

from ganad.errors import ConfigError, DataError
from ganad.models.base import Model

if TYPE_CHECKING:  # scikit-learn's estimators are imported where they are fitted: `import ganad` stays fast
    from sklearn.ensemble import IsolationForest

#: elements of one block of pairwise distances in k-NN scoring (16 MiB of float32)
_BLOCK = 2**22


class OnePassBaseline(Model):
    """Shared base: flatten to rows, fit once with scikit-learn, keep the state as buffers.

    Subclasses implement :meth:`build_buffers`, :meth:`fit_rows` and :meth:`score_rows`.
    ``data_sized`` names the buffers whose first dimension the training data sets (reference
    rows, principal components): loading resizes them to the file's (:meth:`adopt_shapes`),
    within :meth:`max_rows`, before the usual shape checks.
    """

    fits_in_one_pass = True
    baseline = True  # listed after the GAN detectors in reports
    default_selection = "last"  # one fit, one state: there is no epoch to choose
    data_sized: ClassVar[tuple[str, ...]] = ()

    def build(self) -> None:
        self.n_features = math.prod(self.spec.shape)
        # rows the fit saw (0 = not fitted); also gives the model a device, as it has no parameters
        self.register_buffer("n_fit", torch.zeros((), dtype=torch.int64))
        self.build_buffers()

    # -- to implement -------------------------------------------------------------
    def build_buffers(self) -> None:
        """Register the state as buffers, empty until fitted; validate choice hyper-parameters."""
        raise NotImplementedError

    def fit_rows(self, rows: Tensor) -> dict[str, float]:
        """Fit on (N, D) float32 rows; returns numbers worth logging (components kept, rows used)."""
        raise NotImplementedError

    def score_rows(self, rows: Tensor) -> Tensor:
        """Anomaly score of each (N, D) row, higher = more anomalous."""
        raise NotImplementedError

    def max_rows(self, name: str) -> int:
        """Upper bound of the first dimension of the data-sized buffer ``name``."""
        return int(self.hparams.get("max_reference", self.n_features))

    # -- the contract ---------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.n_fit.device

    def fit_normal(self, x: Tensor) -> dict[str, float]:
        rows = x.detach().flatten(1).float()
        if len(rows) < 2:
            raise DataError(f"the {self.name} baseline needs at least 2 normal training samples, got {len(rows)}")
        with _blas_threads():
            logged = self.fit_rows(rows)
        self.n_fit.fill_(len(rows))
        return {"fit_rows": float(len(rows)), **logged}

    def train_step(self, x: Tensor) -> dict[str, float]:
        """A "step" of a one-pass model is a fit on that batch (the engine calls :meth:`fit_normal` instead)."""
        return self.fit_normal(x)

    @torch.no_grad()
    def score(self, x: Tensor) -> Tensor:
        if int(self.n_fit) == 0:
            raise ConfigError(f"the {self.name} baseline is not fitted yet: fit it on normal samples first")
        with _blas_threads():
            return self.score_rows(x.detach().flatten(1).float())

    def adopt_shapes(self, shapes: dict[str, tuple[int, ...]]) -> None:
        """Resize data-sized buffers to a checkpoint's shapes (called by :mod:`ganad.checkpoint` before loading).

        Only the first dimension may change, and only up to :meth:`max_rows`, so an edited file
        can neither change the input size nor make ganad allocate more than the model allows;
        any other difference is left for the checkpoint's shape check to report.
        """
        for name in self.data_sized:
            buf, shape = getattr(self, name), shapes.get(name)
            if shape is None or tuple(shape) == tuple(buf.shape) or len(shape) != buf.dim():
                continue
            if tuple(shape[1:]) == tuple(buf.shape[1:]) and 0 <= shape[0] <= self.max_rows(name):
                setattr(self, name, torch.zeros(tuple(shape), dtype=buf.dtype, device=buf.device))


def _blas_threads() -> threadpool_limits:
    """NumPy's BLAS (which scikit-learn fits with) limited to torch's thread count (``--threads``).

    Left alone it starts one thread per core whatever torch was told: on a shared machine a
    1,000-row PCA then took 1 s instead of 0.07 s.
    """
    return threadpool_limits(limits=torch.get_num_threads())


def _subsample(rows: Tensor, cap: int) -> Tensor:
    """At most ``cap`` rows in their original order, drawn with torch's global RNG (seeded by the run's seed)."""
    if len(rows) <= cap:
        return rows.clone()
    idx = torch.randperm(len(rows))[:cap].sort().values
    return rows[idx.to(rows.device)].clone()


def _seed() -> int:
    """A seed for scikit-learn drawn from torch's global RNG, so the run's seed decides it."""
    return int(torch.randint(0, 2**31 - 1, ()))


def _as_map(diff: Tensor, x: Tensor) -> Tensor:
    """Per-feature map (N, D) for rows; per-pixel map (N, H, W), summed over channels, for images."""
    diff = diff.reshape(x.shape)
    return diff.sum(dim=1) if diff.dim() == 4 else diff


class PCABaseline(OnePassBaseline):
    name = "pca"
    api_name = "PCABaseline"
    paper = "non-GAN baseline: PCA reconstruction error (scikit-learn PCA)"
    defaults: ClassVar[dict] = dict(
        n_components=0.9,
    )
    meanings: ClassVar[dict[str, str]] = dict(
        n_components="< 1: share of the variance to keep (scikit-learn's rule); >= 1: number of components",
    )
    limits: ClassVar[dict] = dict(n_components=(1e-6, 65536))
    data_sized = ("components",)

    def build_buffers(self) -> None:
        n = self.hparams["n_components"]
        if n >= 1 and not float(n).is_integer():
            raise ConfigError(f"pca.n_components must be a share below 1 or a whole number of components, got {n!r}")
        self.register_buffer("mean", torch.zeros(self.n_features))
        self.register_buffer("components", torch.zeros(0, self.n_features))

    def fit_rows(self, rows: Tensor) -> dict[str, float]:
        from sklearn.decomposition import PCA

        n = self.hparams["n_components"]
        # a whole number above what the data allows is capped rather than refused (a grid runs it at every size)
        k: int | float = min(int(n), len(rows), self.n_features) if n >= 1 else n
        pca = PCA(n_components=k, random_state=_seed()).fit(rows.cpu().double().numpy())
        # contiguous, as a loaded model's buffers are: scikit-learn's components_ may be column-major, and
        # a matrix product over another memory layout rounds differently (scores then change on reload)
        self.mean = torch.as_tensor(pca.mean_, dtype=torch.float32, device=rows.device).contiguous()
        self.components = torch.as_tensor(pca.components_, dtype=torch.float32, device=rows.device).contiguous()
        kept = float(pca.explained_variance_ratio_.sum())
        return {"components": float(pca.n_components_), "explained_variance": kept}

    def _reconstruct_rows(self, rows: Tensor) -> Tensor:
        centred = rows - self.mean
        return self.mean + (centred @ self.components.T) @ self.components

    def score_rows(self, rows: Tensor) -> Tensor:
        return (rows - self._reconstruct_rows(rows)).pow(2).sum(1)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        return self._reconstruct_rows(x.flatten(1).float()).reshape(x.shape)

    @torch.no_grad()
    def anomaly_map(self, x: Tensor) -> Tensor:
        return _as_map((x - self.reconstruct(x)).pow(2), x)


class KNNBaseline(OnePassBaseline):
    name = "knn"
    api_name = "KNNBaseline"
    not_exportable = "its score reads the stored training rows in blocks whose size depends on the batch"
    paper = "non-GAN baseline: distance to the k-th nearest training row (Ramaswamy et al., SIGMOD 2000)"
    defaults: ClassVar[dict] = dict(
        k=1,
        metric=None,
        aggregate="kth",
        max_reference=20000,
    )
    meanings: ClassVar[dict[str, str]] = dict(
        metric='"l1" or "l2"; None = by input kind: l1 for rows (issue 16\'s 1-NN), l2 for images (fast)',
        aggregate='"kth": distance to the k-th neighbour (PyOD\'s \'largest\'); "mean": mean of the k',
        max_reference="training rows kept as the reference set (a seeded subsample beyond this)",
        k="neighbours (1: the 1-NN distance issue 16 measured on KDD)",
    )
    limits: ClassVar[dict] = dict(k=(1, 10000), max_reference=(1, 10_000_000))
    choices: ClassVar[dict] = dict(metric=(None, "l1", "l2"), aggregate=("kth", "mean"))
    data_sized = ("reference",)

    def build_buffers(self) -> None:
        metric = self.hparams["metric"] or ("l2" if self.spec.kind == "image" else "l1")
        self.p = 1.0 if metric == "l1" else 2.0
        self.register_buffer("reference", torch.zeros(0, self.n_features))

    def fit_rows(self, rows: Tensor) -> dict[str, float]:
        cap, k = self.hparams["max_reference"], self.hparams["k"]
        if k > min(len(rows), cap):
            raise ConfigError(f"knn.k={k} needs at least {k} reference rows, got {min(len(rows), cap)}")
        self.reference = _subsample(rows, cap)
        return {"reference_rows": float(len(self.reference))}

    def score_rows(self, rows: Tensor) -> Tensor:
        k, ref = self.hparams["k"], self.reference
        step = max(1, _BLOCK // max(len(ref), 1))  # query rows per block of distances
        out = []
        for i in range(0, len(rows), step):
            near = torch.cdist(rows[i : i + step], ref, p=self.p).topk(k, dim=1, largest=False).values
            out.append(near[:, -1] if self.hparams["aggregate"] == "kth" else near.mean(1))
        return torch.cat(out) if out else rows.new_zeros(0)


class IForestBaseline(OnePassBaseline):
    name = "iforest"
    api_name = "IForestBaseline"
    not_exportable = "its score is scikit-learn's IsolationForest, outside torch"
    paper = "non-GAN baseline: Isolation Forest (Liu, Ting and Zhou, ICDM 2008; scikit-learn IsolationForest)"
    defaults: ClassVar[dict] = dict(
        n_estimators=100,
        max_samples=256,
        max_features=1.0,
        max_reference=20000,
    )
    meanings: ClassVar[dict[str, str]] = dict(
        n_estimators="scikit-learn's default",
        max_samples="rows per tree (scikit-learn's 'auto' = min(256, N))",
        max_features="share of the features each tree draws (scikit-learn's default 1.0)",
        max_reference="training rows kept (and re-fitted on after loading)",
    )
    limits: ClassVar[dict] = dict(
        n_estimators=(1, 10000), max_samples=(2, 10_000_000), max_features=(1e-6, 1.0), max_reference=(2, 10_000_000)
    )
    data_sized = ("rows",)

    def build_buffers(self) -> None:
        self.register_buffer("rows", torch.zeros(0, self.n_features))
        self.register_buffer("seed", torch.zeros((), dtype=torch.int64))
        self._forest: IsolationForest | None = None
        # loading new rows or a new seed makes the cached forest stale: re-fit it on first use
        self.register_load_state_dict_post_hook(lambda module, _keys: setattr(module, "_forest", None))

    def fit_rows(self, rows: Tensor) -> dict[str, float]:
        self.rows = _subsample(rows, self.hparams["max_reference"])
        self.seed.fill_(_seed())
        self._forest = None
        self.forest()  # fitted now, through the same path a loaded model takes
        return {"reference_rows": float(len(self.rows))}

    def forest(self) -> IsolationForest:
        """The forest of the stored rows and seed: fitted once, identically after a save and load."""
        if self._forest is None:
            from sklearn.ensemble import IsolationForest

            h = self.hparams
            self._forest = IsolationForest(
                n_estimators=h["n_estimators"],
                max_samples=min(h["max_samples"], len(self.rows)),
                max_features=h["max_features"],
                random_state=int(self.seed),
                n_jobs=1,
            ).fit(self.rows.cpu().numpy())
        return self._forest

    def score_rows(self, rows: Tensor) -> Tensor:
        # scikit-learn's score_samples is higher for normal rows: negate it
        s = -self.forest().score_samples(rows.cpu().numpy())
        return torch.as_tensor(s, dtype=torch.float32, device=rows.device)


class MedianL1Baseline(OnePassBaseline):
    name = "median-l1"
    api_name = "MedianL1Baseline"
    paper = "trivial baseline: L1 distance to the per-feature median of the training samples"
    defaults: ClassVar[dict] = {}

    def build_buffers(self) -> None:
        self.register_buffer("median", torch.zeros(self.n_features))

    def fit_rows(self, rows: Tensor) -> dict[str, float]:
        median = np.median(rows.cpu().numpy(), axis=0)
        self.median = torch.as_tensor(median, dtype=torch.float32, device=rows.device).contiguous()
        return {}

    def score_rows(self, rows: Tensor) -> Tensor:
        return (rows - self.median).abs().sum(1)

    @torch.no_grad()
    def anomaly_map(self, x: Tensor) -> Tensor:
        return _as_map((x.flatten(1) - self.median).abs(), x)
