"""Optional experiment logs beside ``log.jsonl``: TensorBoard and MLflow (``ganad train --log``).

``log.jsonl`` stays the run's own record; these copy what it holds into the tools a team already
watches. TensorBoard (``RUN/tensorboard/``) gets every loss term and the validation AUROC per
epoch, and for images a grid of fixed validation inputs, their reconstructions and anomaly maps,
so a collapsing generator shows as it happens. MLflow gets the run's settings as parameters, the
same scalars per epoch, the final metrics and the run folder as an artefact (tracking URI from
``MLFLOW_TRACKING_URI``, MLflow's default ``./mlruns`` otherwise). Neither is needed for the core
install: ``pip install 'ganad[tensorboard]'`` or ``'ganad[mlflow]'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ganad.errors import ConfigError

if TYPE_CHECKING:  # ganad.config takes SINKS from here, so nothing heavier is imported at load time
    from ganad.models.base import Model

#: the sinks ``--log`` accepts, with the extra each needs
SINKS = {"tensorboard": "tensorboard", "mlflow": "mlflow"}
#: validation images drawn in the per-epoch grid
GRID_SAMPLES = 8


class Sink(Protocol):
    def epoch(self, record: dict[str, Any], model: Model, samples: np.ndarray | None) -> None: ...
    def finish(self, record: dict[str, Any], out: Path) -> None: ...


def epoch_numbers(record: dict[str, Any]) -> dict[str, float]:
    """The numbers of an epoch record (losses, validation metrics, seconds) without its epoch and step.

    The one filter behind the log line of each epoch (``engine``) and the sinks' scalars.
    """
    return {k: float(v) for k, v in record.items() if k not in ("epoch", "step") and isinstance(v, int | float)}


def image_grid(model: Model, samples: np.ndarray) -> np.ndarray | None:
    """(H, W, 3) floats in [0, 1]: inputs on the first row, reconstructions on the second, maps on the
    third (each scaled to its own maximum); None when the model draws no reconstruction."""
    from ganad import engine

    recon = engine.reconstructions(model, samples)
    maps = engine.anomaly_maps(model, samples)
    if recon is None:
        return None

    def row(imgs: np.ndarray) -> np.ndarray:
        imgs = imgs if imgs.shape[1] == 3 else np.repeat(imgs, 3, axis=1)
        return np.concatenate(list(imgs.transpose(0, 2, 3, 1)), axis=1)

    rows = [row((samples + 1) / 2), row((np.asarray(recon) + 1) / 2)]
    if maps is not None:
        m = np.asarray(maps, dtype=np.float32)[:, None]
        rows.append(row(m / max(float(m.max()), 1e-12)))
    return np.clip(np.concatenate(rows, axis=0), 0.0, 1.0)


class TensorBoardSink:
    def __init__(self, out: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("--log tensorboard needs TensorBoard: pip install 'ganad[tensorboard]'") from None
        self.writer = SummaryWriter(str(out / "tensorboard"))

    def epoch(self, record: dict[str, Any], model: Model, samples: np.ndarray | None) -> None:
        step = int(record["epoch"])
        for k, v in epoch_numbers(record).items():
            self.writer.add_scalar(f"epoch/{k}", v, step)
        if samples is not None and model.spec.kind == "image":
            grid = image_grid(model, samples)
            if grid is not None:
                self.writer.add_image("inputs | reconstructions | maps", grid, step, dataformats="HWC")
        self.writer.flush()

    def finish(self, record: dict[str, Any], out: Path) -> None:
        for k, v in (record.get("metrics") or {}).items():
            if isinstance(v, int | float):
                self.writer.add_scalar(f"test/{k}", float(v), 0)
        self.writer.close()


class MLflowSink:
    def __init__(self, out: Path, config: dict[str, Any]) -> None:
        try:
            import mlflow
        except ImportError:
            raise ConfigError("--log mlflow needs MLflow: pip install 'ganad[mlflow]'") from None
        self.mlflow = mlflow
        mlflow.start_run(run_name=out.name)
        params = {k: v for k, v in config.items() if k != "params" and v is not None}
        params.update({f"params.{k}": v for k, v in (config.get("params") or {}).items()})
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})

    def epoch(self, record: dict[str, Any], model: Model, samples: np.ndarray | None) -> None:
        self.mlflow.log_metrics(epoch_numbers(record), step=int(record["epoch"]))

    def finish(self, record: dict[str, Any], out: Path) -> None:
        metrics = {
            f"test_{k}": float(v) for k, v in (record.get("metrics") or {}).items() if isinstance(v, int | float)
        }
        self.mlflow.log_metrics(metrics)
        self.mlflow.log_artifacts(str(out), artifact_path="run")
        self.mlflow.end_run()


def make_sink(kind: str | None, out: Path, config: dict[str, Any]) -> Sink | None:
    """The sink ``--log`` names (None: log.jsonl only); a missing package is one ConfigError naming the extra."""
    if kind is None:
        return None
    if kind == "tensorboard":
        return TensorBoardSink(out)
    if kind == "mlflow":
        return MLflowSink(out, config)
    raise ConfigError(f"--log must be one of {', '.join(SINKS)}, got {kind!r}")
