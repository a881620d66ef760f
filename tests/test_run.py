"""ganad.run: the split a run trains, selects and is scored on."""

from __future__ import annotations

import numpy as np
import pytest

from ganad.config import RunConfig
from ganad.run import prepare_split


def test_validation_is_capped_stratified_unless_a_config_asks_for_all(data_dir):
    """Issue 19: one-class-normal MNIST validated on 6,069 images, more than it trained on, every epoch."""
    base = RunConfig(dataset="mnist", protocol="one-class-normal", cls=3, data_dir=str(data_dir))
    whole = prepare_split(base.replace(max_val=None))
    capped = prepare_split(base)
    assert len(whole.val) > 6000 and len(capped.val) == 2000 == base.max_val
    assert abs(capped.val.y.mean() - whole.val.y.mean()) < 0.001, "stratified: the anomaly share is kept"
    assert capped.description["sizes"]["val"] == 2000 and capped.description["sizes_before_subsampling"]["val"] > 6000
    np.testing.assert_array_equal(capped.train.x, whole.train.x)  # the cap touches validation only
    again = prepare_split(base)
    np.testing.assert_array_equal(again.val.x, capped.val.x)  # seeded


def test_an_mvtec_category_trains_and_reports_pixel_metrics_per_defect(mvtec_tree, tmp_path, capsys):
    """Issue 20: --dataset mvtec reads the MVTec AD layout, masks included, and the run's metrics.json
    holds pixel AUROC, AUPRO and the image AUROC of each defect type."""
    import json

    from test_cli import in_process

    root = mvtec_tree()
    out = tmp_path / "run"
    args = ["train", "--dataset", "mvtec", "--data-dir", str(root), "--category", "widget", "--model", "pca"]
    code, stdout, err = in_process(capsys, *args, "--out", str(out), "-q")
    assert code == 0, err
    rec = json.loads((out / "metrics.json").read_text())
    m = rec["metrics"]
    assert m["auroc"] > 0.9 and m["pixel_auroc"] > 0.9 and 0.5 < m["aupro"] <= 1.0  # the defects are plain
    assert set(rec["per_defect_auroc"]) == {"hole", "scratch"}
    assert "pixel AUROC" in stdout and "AUROC per defect: hole" in stdout


def test_mvtec_layout_errors_name_what_is_missing(mvtec_tree):
    from ganad.data import load_mvtec
    from ganad.errors import DataError

    root = mvtec_tree()
    with pytest.raises(DataError, match=r"no such MVTec AD category; .* holds widget"):
        load_mvtec(root, "bottle")
    (root / "widget" / "ground_truth" / "hole" / "003_mask.png").unlink()
    with pytest.raises(DataError, match=r"003.png: no ground-truth mask .*hole/003_mask.png"):
        load_mvtec(root, "widget")


def test_a_folder_run_with_a_mask_dir_reports_pixel_metrics(mvtec_tree, tmp_path, capsys):
    """Issue 20: --dataset folder --mask-dir takes masks in MVTec AD's naming for the anomalous images."""
    import json
    import shutil

    from test_cli import in_process

    base = mvtec_tree() / "widget"
    test_dir = tmp_path / "eval"
    shutil.copytree(base / "test" / "good", test_dir / "normal")
    for defect in ("scratch", "hole"):
        shutil.copytree(base / "test" / defect, test_dir / "anomalous" / defect)
    out = tmp_path / "run"
    args = ["--dataset", "folder", "--train-dir", str(base / "train" / "good"), "--test-dir", str(test_dir)]
    code, _, err = in_process(
        capsys, "train", *args, "--mask-dir", str(base / "ground_truth"), "--model", "pca", "--out", str(out), "-q"
    )
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    assert m["pixel_auroc"] > 0.9 and 0 < m["aupro"] <= 1


def test_log_tensorboard_writes_each_epochs_scalars_and_an_image_grid(tmp_path, capsys):
    """Issue 20: --log tensorboard mirrors log.jsonl into TensorBoard, with inputs / x_hat / maps per epoch."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from test_cli import in_process

    out = tmp_path / "run"
    args = ["train", "--dataset", "digits", "--epochs", "2", "--max-train", "128", "--maps", "0"]
    code, _, err = in_process(capsys, *args, "--log", "tensorboard", "--out", str(out), "-q")
    assert code == 0, err
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0}).Reload()
    tags = events.Tags()
    assert {"epoch/adversarial", "epoch/contextual", "epoch/val_auroc", "test/auroc"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("epoch/val_auroc")] == [1, 2]
    assert len(events.Images("inputs | reconstructions | maps")) == 2
    code, _, err = in_process(capsys, *args, "--out", str(out), "--overwrite", "-q")  # still a run folder
    assert code == 0, err


def test_log_mlflow_records_settings_metrics_and_the_run_folder(tmp_path, capsys, monkeypatch):
    import mlflow
    from test_cli import in_process

    # a file store: the tests install mlflow-skinny, without the SQL backend MLflow now defaults to
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    out = tmp_path / "run"
    args = ["train", "--dataset", "digits", "--epochs", "1", "--max-train", "128", "--maps", "0", "--log", "mlflow"]
    code, _, err = in_process(capsys, *args, "--out", str(out), "-q")
    assert code == 0, err
    [run] = mlflow.search_runs(output_format="list")
    assert run.data.params["model"] == "ganomaly" and run.data.params["dataset"] == "digits"
    assert 0 <= run.data.metrics["test_auroc"] <= 1 and "val_auroc" in run.data.metrics
    artefacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "run")}
    assert "run/metrics.json" in artefacts and "run/model.safetensors" in artefacts
