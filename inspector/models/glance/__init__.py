"""Glance (Wang et al., CVPR 2021, "glancing at the patch"): global–local comparison of patches."""
