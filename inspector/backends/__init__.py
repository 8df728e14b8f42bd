"""Inference backends behind one small interface (see :mod:`inspector.backends.base`)."""
