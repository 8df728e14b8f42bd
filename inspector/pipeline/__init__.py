"""The inspection daemon: capture → preprocess → batch → infer → threshold → publish (ZeroMQ).

Each stage is a worker thread with one loop and one job, connected to the next
by a bounded queue whose drops are counted (DESIGN.md seam 6). One frame travels
as one :class:`~inspector.pipeline.frame.Frame` object that every stage stamps
with ``time.monotonic_ns()``. :class:`~inspector.pipeline.daemon.Daemon` wires
the workers together and owns the lifecycle.
"""
