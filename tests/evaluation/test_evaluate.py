import numpy as np

from inspector.evaluation.evaluate import score_images


def test_score_images_copies_outputs_of_scorers_that_reuse_buffers():
    scores, maps = np.zeros(2, np.float32), np.zeros((2, 1, 4, 4), np.float32)

    def reusing_scorer(batch):  # like ONNX Runtime's IO binding: same arrays every call
        scores[:] = batch[:, 0, 0, 0]
        maps[:] = batch[:, 0, 0, 0].reshape(2, 1, 1, 1)
        return scores, maps

    images = np.arange(4, dtype=np.uint8).reshape(4, 1, 1, 1).repeat(3, axis=3)
    got_scores, got_maps = score_images(reusing_scorer, images, batch_size=2)
    np.testing.assert_array_equal(got_scores, [0, 1, 2, 3])
    assert got_maps.shape == (4, 4, 4) and got_maps[1].max() == 1 and got_maps[3].min() == 3


def test_format_table_with_undefined_metrics():
    """A test set with only good images: AUROC, AUPRO and F1 are undefined (None) and shown as such."""
    from inspector.evaluation.evaluate import format_table

    metrics = {"image_auroc": None, "pixel_auroc": None, "aupro": None, "f1_max": None, "threshold_f1": None,
               "n_images": 8, "n_good": 8, "n_defect": 0, "per_defect_type": {}}
    table = format_table(metrics)
    assert "—" in table.splitlines()[1] and "F1-max undefined" in table and "0 defective" in table
