"""Training glue: run config, loop, checkpoints, progress (kept apart from model code)."""
