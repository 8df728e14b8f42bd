"""Anomaly models, registered by name (see :mod:`inspector.models.registry`)."""
