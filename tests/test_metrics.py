"""ganad.metrics: the pixel-level metrics of the MVTec AD layout, checked against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ganad.metrics import aupro, per_group_auroc, pixel_auroc, pro_curve

# two 2x3 images: image 0 has one anomalous region of 2 pixels, image 1 one of 1 pixel; 9 normal pixels
MASKS = np.array([[[1, 1, 0], [0, 0, 0]], [[0, 0, 0], [0, 0, 1]]])
MAPS = np.array([[[0.9, 0.5, 0.8], [0.1, 0.2, 0.3]], [[0.4, 0.0, 0.0], [0.0, 0.0, 0.7]]])


def test_aupro_matches_the_hand_computed_curve():
    # thresholds from the top: 0.9 finds half of region 1 (PRO 0.25 = 1/2 of 1/2) at FPR 0; 0.8 is a
    # normal pixel (FPR 1/9); 0.7 finds region 2 (PRO 0.75), 0.5 the rest of region 1 (PRO 1.0);
    # 0.4 and 0.3 are normal (FPR 2/9, then 3/9 > 0.3). Area to 0.3: 0.25 * 1/9 + 1.0 * (0.3 - 1/9).
    fpr, pro = pro_curve(MASKS, MAPS)
    np.testing.assert_allclose(fpr[:6], [0, 0, 1 / 9, 1 / 9, 1 / 9, 2 / 9])
    np.testing.assert_allclose(pro[:6], [0, 0.25, 0.25, 0.75, 1.0, 1.0])
    assert aupro(MASKS, MAPS) == pytest.approx((0.25 / 9 + (0.3 - 1 / 9)) / 0.3)
    assert aupro(MASKS, MASKS.astype(float)) == pytest.approx(1.0)  # a perfect map


def test_pro_weighs_every_region_alike_not_every_pixel():
    masks = np.zeros((1, 4, 8), dtype=int)
    masks[0, :, :4] = 1  # a 16-pixel region
    masks[0, 0, 7] = 1  # a 1-pixel region
    found_big = np.where(masks == 1, 1.0, 0.0)
    found_big[0, 0, 7] = 0.0  # the small region missed, the big one found
    fpr, pro = pro_curve(masks, found_big)
    assert fpr[1] == 0 and pro[1] == pytest.approx(0.5)  # half the regions, though 16 of 17 anomalous pixels


def test_pixel_auroc_is_scikit_learns_over_all_pixels():
    assert pixel_auroc(MASKS, MAPS) == pytest.approx(25 / 27)  # 27 pairs; 0.8 beats 0.7 and 0.5
    assert pixel_auroc(MASKS, MAPS) == pytest.approx(roc_auc_score(MASKS.ravel(), MAPS.ravel()))


def test_per_group_auroc_sets_each_defect_type_against_the_normal_samples():
    y = np.array([0, 0, 1, 1, 1])
    s = np.array([0.1, 0.4, 0.9, 0.3, 0.6])
    groups = np.array(["good", "good", "crack", "scratch", "crack"])
    assert per_group_auroc(y, s, groups) == {"crack": 1.0, "scratch": 0.5}


def test_pro_needs_a_region_and_matching_shapes():
    with pytest.raises(ValueError, match="same shape"):
        pro_curve(MASKS, MAPS[:1])
    with pytest.raises(ValueError, match="at least one anomalous region"):
        pro_curve(np.zeros_like(MASKS), MAPS)


def test_pro_curve_agrees_with_a_threshold_by_threshold_count():
    """The one-sort curve against the definition, threshold by threshold, on random masks and maps."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    masks = (rng.random((3, 12, 12)) > 0.85).astype(int)
    maps = np.round(rng.random((3, 12, 12)) + 0.5 * masks, 2)  # rounded: ties between pixels
    regions = [(i, lab == r) for i in range(3) for lab, n in [ndimage.label(masks[i])] for r in range(1, n + 1)]
    fpr, pro = pro_curve(masks, maps)
    for t, f, p in zip(np.unique(maps)[::-1], fpr[1:], pro[1:], strict=True):
        assert f == pytest.approx(((maps >= t) & (masks == 0)).sum() / (masks == 0).sum())
        assert p == pytest.approx(np.mean([(maps[i][r] >= t).mean() for i, r in regions]))
