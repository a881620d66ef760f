"""benchmarks/pyod_kdd.py end to end on a small real KDD subset.

Why a test for a benchmark script: its JSON carries claims (every detector
scored on the same split, equal work, PyOD's known defects measured rather
than asserted). Running it small on the real data keeps those claims true when
ganad or PyOD change; PyOD is in the ``dev`` extra so CI always has it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "pyod_kdd.py"
DETECTORS = ("ganad_anogan", "ganad_egbad", "ganad_ganomaly", "pyod_iforest", "pyod_alad", "pyod_anogan")


def _run(args: list[str], data_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GANAD_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )


def test_pyod_kdd_small_run_reports_every_detector(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "pyod_kdd.json"
    args = ["--max-train", "500", "--max-test", "200", "--epochs", "1", "--search-steps", "5", "--out", str(out)]
    res = _run(args, data_dir, tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads(res.stdout)  # stdout is the JSON document and nothing else
    assert json.loads(out.read_text()) == doc

    split = doc["split"]
    assert (split["n_train"], split["n_test"], split["protocol"]) == (500, 200, "kdd")
    assert 0.15 < split["test_anomaly_ratio"] < 0.25  # the kdd protocol's 20 %, kept by the stratified subset
    work = doc["equal_work"]
    assert (work["epochs"], work["batch_size"], work["latent_search_steps"]) == (1, 64, 5)
    assert work["pyod_alad_epochs_argument"] == 500 // 64  # ALAD's "epochs" are mini-batch steps

    det = doc["detectors"]
    assert set(det) == set(DETECTORS)
    for name, r in det.items():
        assert "error" not in r, (name, r.get("error"))
        for metric in ("auroc", "auprc", "precision", "recall", "f1"):
            assert 0.0 <= r[metric] <= 1.0, (name, metric, r[metric])
        assert r["fit_seconds"] > 0 and r["score_ms_per_sample"] > 0, name
    for name in ("ganad_anogan", "ganad_egbad", "ganad_ganomaly"):
        assert det[name]["scores_repeatable"], name
        assert not det[name]["observed"]["weights_changed_while_scoring_test_rows"], name

    # the equal-work settings reached both libraries
    assert det["pyod_anogan"]["params"]["epochs_query"] == det["ganad_anogan"]["params"]["search_steps"] == 5
    assert det["pyod_anogan"]["networks"]["generator"] == det["ganad_anogan"]["networks"]["generator"]
    assert det["pyod_anogan"]["networks"]["discriminator"] == det["ganad_anogan"]["networks"]["netd"]
    assert det["pyod_alad"]["networks"]["encoder"] == det["ganad_egbad"]["networks"]["encoder"]
    assert det["pyod_alad"]["networks"]["generator"] == det["ganad_egbad"]["networks"]["generator"]

    # PyOD's defects the JSON describes are measured: if PyOD fixes them, update the notes in the script
    pa = det["pyod_anogan"]["observed"]
    assert pa["latent_search_steps_run"] == 500 * 5
    assert pa["weights_changed_by_latent_search_in_fit"]
    assert det["pyod_alad"]["observed"]["networks_in_train_mode_while_scoring"]

    ratios = doc["speed_ratios"]
    for pair in ("anogan_pyod_over_ganad", "alad_over_egbad"):
        assert all(v is not None and v > 0 for v in ratios[pair].values()), ratios[pair]


def test_pyod_kdd_without_pyod_says_how_to_install(data_dir: Path, tmp_path: Path) -> None:
    hide = (
        "import runpy, sys; sys.modules['pyod'] = None; sys.argv = [sys.argv[1]]; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    env = {**os.environ, "GANAD_DATA_DIR": str(data_dir)}
    res = subprocess.run(
        [sys.executable, "-c", hide, str(SCRIPT)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert res.returncode != 0
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'ganad[bench]'" in lines[0], res.stderr
