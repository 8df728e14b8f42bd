"""Datasets (MVTec AD, BTAD, folders), image/mask I/O, resize policies, synthetic data."""

from inspector.data.datasets import (Dataset, Sample, load_batch, load_dataset, load_masks,
                                     split_good, split_train_val)
from inspector.data.images import (RESIZE_POLICIES, crop_box, map_to_frame, read_image, read_mask,
                                   resize_image, resize_mask)

__all__ = [
    "Dataset", "Sample", "load_batch", "load_dataset", "load_masks", "split_good", "split_train_val",
    "RESIZE_POLICIES", "crop_box", "map_to_frame", "read_image", "read_mask", "resize_image", "resize_mask",
]
