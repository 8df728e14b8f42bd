"""Evaluation: metrics (AUROC, pixel AUROC, AUPRO, F1-max), plots and reports."""
