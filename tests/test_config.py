"""ganad.config: each run setting is declared once, and the CLI, the API, the engine and the
config reader all follow that declaration (issue 17, "every run setting declared once")."""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import pytest

import ganad
from ganad import config, engine
from ganad.cli import make_parser
from ganad.detector import COMMON_PARAMS, DETECTOR_SETTINGS
from ganad.errors import ConfigError
from ganad.models import MODELS


def _train_actions() -> dict[str, argparse.Action]:
    sub = next(a for a in make_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in sub.choices["train"]._actions}


def test_every_declared_setting_is_a_train_flag_with_its_help_choices_and_default():
    actions = _train_actions()
    for name, f in config.FIELDS.items():
        if not f.metadata["cli"]:
            assert name not in actions
            continue
        act = actions[name]
        flag = "--" + (f.metadata["flag"] or name).replace("_", "-")
        assert flag in act.option_strings, name
        assert act.help.startswith(f.metadata["help"]), name
        assert tuple(act.choices or ()) == tuple(f.metadata["choices"] or ()), name
        if f.default not in (None, dataclasses.MISSING) and "default" not in f.metadata["help"]:
            assert f"(default {f.default})" in act.help, name


def test_a_flag_reaches_the_run_config_by_its_declared_name():
    args = make_parser().parse_args(["train", "--class", "3", "--row-scaling", "none", "--select-on", "last"])
    from ganad.cli import build_config

    cfg = build_config(args)
    assert (cfg.cls, cfg.row_scaling, cfg.select_on) == (3, "none", "last")


@pytest.mark.parametrize("name", list(MODELS))
def test_every_detector_takes_the_declared_api_settings_with_their_defaults(name):
    params = ganad.get_detector_class(name)().get_params()
    for key, default in config.API_FIELDS.items():
        assert params[key] == default, key
    for key, (default, _) in DETECTOR_SETTINGS.items():
        assert params[key] == default, key
    assert set(COMMON_PARAMS) == set(config.API_FIELDS) | set(DETECTOR_SETTINGS)


def test_the_engine_defaults_are_the_declared_ones():
    opts = engine.TrainOptions()
    for key in ("epochs", "steps", "batch_size", "seed", "device", "select_on"):
        assert getattr(opts, key) == config.FIELDS[key].default, key


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("channels", 2, "'channels' must be 1 or 3, got 2"),
        ("select_on", "best", "'select_on' must be one of val, test, last, got 'best'"),
        ("row_scaling", "zscore", "'row_scaling' must be minmax or none, got 'zscore'"),
        ("epochs", 0, "'epochs' must be >= 1, got 0"),
        ("image_size", 5000, "'image_size' must be between 1 and 4096, got 5000"),
        ("val_fraction", float("nan"), "'val_fraction' must be between 0.0 and 0.9"),
    ],
)
def test_a_value_outside_its_declaration_is_one_error_naming_the_field(field, value, said):
    with pytest.raises(ConfigError, match=said.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        config.from_dict({field: value}, source="my.yaml")


def test_the_api_and_the_engine_check_against_the_same_declaration():
    with pytest.raises(ConfigError, match="'select_on' must be one of val, test, last"):
        ganad.GANomaly(select_on="best").fit(np.zeros((4, 3)))
    with pytest.raises(ConfigError, match="TrainOptions: field 'batch_size' must be >= 2"):
        engine.TrainOptions(batch_size=1)
    with pytest.raises(ConfigError, match="score_batch_size must be a whole number >= 1"):
        ganad.GANomaly(score_batch_size=0).fit(np.zeros((4, 3)))


def test_the_scoring_batch_size_is_the_detectors_and_never_changes_a_score(digits, tmp_path):
    x, y = digits
    det = ganad.GANomaly(epochs=1, nz=8, width=8, batch_size=32, verbose=False, threads=1, score_batch_size=7)
    det.fit(x[y == 0][:100])
    small = det.decision_function(x[:50])
    det.set_params(score_batch_size=512)
    np.testing.assert_allclose(det.decision_function(x[:50]), small, rtol=1e-5, atol=1e-6)
    det.save(tmp_path / "m")
    assert ganad.load(tmp_path / "m").score_batch_size == 512
