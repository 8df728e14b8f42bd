"""Metrics against brute force and hand-worked cases."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from inspector.evaluation.metrics import (aupro, auroc, evaluate_scores, f1_max, image_auroc, pixel_auroc,
                                          pro_curve, roc_curve)


def brute_auroc(scores, labels):
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (pos.size * neg.size)


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_pairwise_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 200))
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]
    scores = rng.integers(0, 6, n).astype(np.float32) + labels * rng.integers(0, 2, n)  # many ties
    expected = brute_auroc(scores, labels)
    assert auroc(scores, labels) == pytest.approx(expected, abs=1e-12)
    assert auroc(scores, 1 - labels) == pytest.approx(1 - expected, abs=1e-12)
    fpr, tpr, thresholds = roc_curve(scores, labels)
    assert np.trapezoid(tpr, fpr) == pytest.approx(expected, abs=1e-12)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1 and thresholds[0] == np.inf
    assert (np.diff(thresholds) < 0).all()


def test_auroc_perfect_inverted_and_undefined():
    labels = np.array([0, 0, 1, 1])
    assert image_auroc([0.1, 0.2, 0.8, 0.9], labels) == 1.0
    assert auroc([0.9, 0.8, 0.2, 0.1], labels) == 0.0
    assert auroc([0.5] * 4, labels) == 0.5
    assert math.isnan(auroc([0.1, 0.2], [1, 1]))
    with pytest.raises(ValueError, match="NaN"):
        auroc([0.1, float("nan")], [0, 1])


def test_pixel_auroc_skips_unknown_masks_and_accepts_mixed_sizes():
    maps = [np.array([[0.9, 0.1], [0.2, 0.3]]), np.array([[0.5, 0.4, 0.05]]), np.array([[1.0, 1.0]])]
    masks = [np.array([[1, 0], [0, 0]], bool), np.zeros((1, 3), bool), None]
    scores = np.array([0.9, 0.1, 0.2, 0.3, 0.5, 0.4, 0.05])
    labels = np.array([1, 0, 0, 0, 0, 0, 0])
    assert pixel_auroc(maps, masks) == pytest.approx(brute_auroc(scores, labels)) == 1.0
    assert math.isnan(pixel_auroc(maps, [None, None, None]))


def test_aupro_hand_worked_case():
    # Image A (defective, 1x6): mask 1 1 0 0 1 0 -> regions R1 = {0, 1} (2 px) and R2 = {4} (1 px).
    #   map                      0.9 0.5 0.7 0.1 0.6 0.2
    # Image B (good, 1x4): map 0.3 0.8 0.05 0.5.  Defect-free pixels: 3 in A + 4 in B = 7.
    # Thresholds (score >= t), FPR = FP/7, PRO = mean over the 2 regions of their covered fraction:
    #   t=0.9: FP 0, R1 1/2, R2 0 -> (0,   0.25)
    #   t=0.8: FP 1 (B)          -> (1/7, 0.25)
    #   t=0.7: FP 2 (A)          -> (2/7, 0.25)
    #   t=0.6: R2 covered        -> (2/7, 0.75)
    #   t=0.5: FP 3 (B), R1 full -> (3/7, 1.00)   tie: both move at once
    # With the leading (0, 0) the area up to FPR 0.3 is
    #   0.25 * 2/7                                   (flat at 0.25 from 0 to 2/7)
    # + 0.5 * (0.75 + 0.775) * (0.3 - 2/7)           (0.775 = PRO interpolated at 0.3 on the tie segment:
    #                                                 0.75 + 0.25 * (1/70) / (1/7))
    # = 5/70 + 0.7625/70 = 5.7625/70;  AUPRO = that / 0.3 = 5.7625/21 = 0.2744047619...
    maps = [np.array([[0.9, 0.5, 0.7, 0.1, 0.6, 0.2]]), np.array([[0.3, 0.8, 0.05, 0.5]])]
    masks = [np.array([[1, 1, 0, 0, 1, 0]], bool), np.zeros((1, 4), bool)]
    assert aupro(maps, masks, fpr_limit=0.3) == pytest.approx(5.7625 / 21, abs=1e-9)
    fpr, pro = pro_curve(maps, masks)
    assert fpr[:6] == pytest.approx([0, 0, 1 / 7, 2 / 7, 2 / 7, 3 / 7])
    assert pro[:6] == pytest.approx([0, 0.25, 0.25, 0.25, 0.75, 1.0])
    perfect = [np.array([[1.0, 1.0, 0.0, 0.0, 1.0, 0.0]]), np.zeros((1, 4))]
    assert aupro(perfect, masks) == pytest.approx(1.0)


def brute_aupro(maps, masks, limit):
    ok = np.concatenate([(~m).ravel() for m in masks])
    scores = np.concatenate([a.ravel() for a in maps])
    regions = []
    for i, m in enumerate(masks):
        n, lab = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)
        regions += [(i, lab == k) for k in range(1, n)]
    xs, ys = [0.0], [0.0]
    for t in np.unique(scores)[::-1]:
        xs.append((scores[ok] >= t).sum() / ok.sum())
        ys.append(np.mean([(maps[i][r] >= t).mean() for i, r in regions]))
    xs, ys = np.array(xs), np.array(ys)
    j = np.searchsorted(xs, limit, "right")  # first point past the limit
    y_at = np.interp(limit, xs[j - 1:j + 1], ys[j - 1:j + 1]) if xs[j - 1] < limit else ys[j - 1]
    xs, ys = np.r_[xs[:j], limit], np.r_[ys[:j], y_at]
    return np.trapezoid(ys, xs) / limit


@pytest.mark.parametrize("limit", [0.05, 0.3, 1.0])
def test_aupro_matches_brute_force(limit):
    rng = np.random.default_rng(4)
    masks = [np.zeros((12, 10), bool) for _ in range(4)]
    masks[0][2:5, 2:6] = True
    masks[0][8:10, 7:9] = True  # a second region
    masks[1][5:7, 0:3] = True
    masks[1][7, 3] = True  # diagonal neighbour: same region under 8-connectivity
    maps = [np.round(rng.random((12, 10)) * 20) / 20 + 0.4 * m for m in masks]  # ties on purpose
    assert aupro(maps, masks, limit) == pytest.approx(brute_aupro(maps, masks, limit), abs=1e-9)


def test_f1_max_hand_case():
    # descending: 0.9(+) 0.8(-) 0.7(+) 0.6(+) 0.5(-) 0.4(-); 3 positives
    # t=0.6: tp 3 of 4 predicted -> P 0.75, R 1, F1 = 1.5/1.75 = 6/7 (best; t=0.7 gives 2/3, t=0.5 gives 0.75)
    f1, thr, p, r = f1_max([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [1, 0, 1, 1, 0, 0])
    assert (f1, thr, p, r) == pytest.approx((6 / 7, 0.6, 0.75, 1.0))
    assert math.isnan(f1_max([0.1, 0.2], [0, 0])[0])


def test_evaluate_scores_keys_and_per_type():
    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.25])
    labels = np.array([0, 0, 0, 1, 1, 1])
    types = ["good", "good", "good", "cut", "cut", "hole"]
    result = evaluate_scores(scores, labels, types)
    assert set(result) == {"image_auroc", "pixel_auroc", "aupro", "f1_max", "threshold_f1", "n_images",
                           "n_good", "n_defect", "n_masked", "per_defect_type"}
    assert result["pixel_auroc"] is None and result["aupro"] is None
    assert (result["n_images"], result["n_good"], result["n_defect"]) == (6, 3, 3)
    assert result["image_auroc"] == pytest.approx(brute_auroc(scores, labels))
    assert result["per_defect_type"]["cut"] == {"image_auroc": 1.0, "pixel_auroc": None, "aupro": None, "n": 2}
    assert result["per_defect_type"]["hole"]["image_auroc"] == pytest.approx(2 / 3)

    maps = np.zeros((6, 4, 4), np.float32)
    maps[3, 0, 0] = maps[4, 1, 1] = 1.0
    masks = [None, None, None, maps[3] > 0, maps[4] > 0, None]  # good: None means clean; hole: unknown
    result = evaluate_scores(scores, labels, types, maps=maps, masks=masks)
    assert result["pixel_auroc"] == 1.0 and result["aupro"] == pytest.approx(1.0)
    assert result["per_defect_type"]["cut"]["pixel_auroc"] == 1.0
    assert result["per_defect_type"]["hole"]["pixel_auroc"] is None


def test_f1_of_a_test_set_of_defects_alone_is_undefined_like_its_auroc():
    """No good image: precision is 1 at every threshold, so 'F1-max 1.000 at threshold <lowest defect score>' was
    reported (metrics.json threshold_f1 too): a threshold chosen without one good part, read by users as the one
    to deploy. Undefined (None) like the image AUROC beside it."""
    scores = np.array([0.14, 0.9, 2.3])
    f1, thr, p, r = f1_max(scores, [1, 1, 1])
    assert all(math.isnan(v) for v in (f1, thr, p, r))
    result = evaluate_scores(scores, np.array([1, 1, 1]), ["crack", "hole", "hole"])
    assert result["image_auroc"] is None and result["f1_max"] is None and result["threshold_f1"] is None


def test_pixel_metrics_over_some_defect_types_say_which_images_they_cover():
    """One defect type masked, another not: the headline pixel AUROC covers the masked one alone, and says so
    (it was shown in the row "all" with no word that half the defect images were not in it)."""
    from inspector.evaluation.evaluate import format_table
    from inspector.evaluation.reports import metrics_section

    scores, labels = np.array([0.1, 0.2, 0.9, 0.8, 0.7]), np.array([0, 0, 1, 1, 1])
    maps = np.zeros((5, 4, 4), np.float32)
    maps[2, 0, 0] = 1.0
    masks = [None, None, maps[2] > 0, None, np.zeros((4, 4), bool)]  # cut masked; hole unmasked; one mask empty
    result = evaluate_scores(scores, labels, ["good", "good", "cut", "hole", "hole"], maps=maps, masks=masks)
    assert result["pixel_auroc"] == 1.0 and (result["n_masked"], result["n_defect"]) == (1, 3)
    line = "pixel AUROC and AUPRO cover 1 of the 3 defective image(s): the other 2 have no usable mask"
    assert line in format_table(result) and line in metrics_section(result).body

    unmasked = evaluate_scores(scores, labels, ["good", "good", "cut", "hole", "hole"], maps=maps,
                               masks=[None] * 5)
    assert unmasked["pixel_auroc"] is None and unmasked["n_masked"] == 0
    assert "pixel AUROC and AUPRO undefined: none of the 3 defective image(s) has a usable mask" in \
        format_table(unmasked)
    assert "pixel AUROC" not in format_table(evaluate_scores(scores, labels, ["good"] * 2 + ["cut"] * 3, maps=maps,
                                                             masks=[None, None] + [maps[2] > 0] * 3))
