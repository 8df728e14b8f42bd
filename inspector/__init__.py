"""inspector: real-time visual inspection with student-teacher anomaly models."""

__version__ = "0.1.0"
