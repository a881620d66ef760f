"""ganad.run: the split a run trains, selects and is scored on."""

from __future__ import annotations

import numpy as np

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
