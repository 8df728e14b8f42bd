"""When a training phase stops, and why.

Two modes, chosen by :class:`~inspector.training.config.TrainConfig`:

- ``epochs`` set: exactly that many epochs (``--epochs N``), no early stop.
- ``epochs`` unset: early stopping on the validation loss (Prechelt 1998,
  "Early stopping — but when?"): stop once ``patience`` epochs in a row brought
  no relative improvement above ``min_delta``, at most ``max_epochs`` epochs.

The best checkpoint is still the lowest validation loss seen (any improvement);
``min_delta`` only decides when improvements are too small to keep going.

A time cap (``time_budget_s``, per phase and per invocation; each invocation
runs at least one epoch) applies in both modes. The rule is replayable
from the recorded validation losses, so ``--resume`` continues with the same
patience count as the run it extends.
"""

from __future__ import annotations

import math

from inspector.training.config import TrainConfig

# Why a phase stopped, as recorded in summary.json (``stop_reason``).
CONVERGED = "converged"  # early stopping: patience ran out
EPOCH_CAP = "epoch_cap"  # early stopping: max_epochs reached before convergence
EPOCHS = "epochs"  # the forced epoch count (--epochs N) was run
TIME_CAP = "time_cap"  # time_budget_s reached
INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM
STOP_REASONS = (CONVERGED, EPOCH_CAP, EPOCHS, TIME_CAP, INTERRUPTED)


class StopRule:
    """Tracks validation losses of one phase and says whether the next epoch may run."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.best = math.inf  # best loss that counted as a (significant) improvement
        self.best_epoch = 0
        self.last_epoch = 0

    def observe(self, epoch: int, val_loss: float) -> bool:
        """Record epoch ``epoch``'s validation loss; True when it improved by more than min_delta."""
        self.last_epoch = epoch
        # abs(): flow models (AST) have a negative log-likelihood loss.
        improved = val_loss < self.best - self.cfg.min_delta * abs(self.best) if math.isfinite(self.best) \
            else math.isfinite(val_loss)
        if improved:
            self.best, self.best_epoch = val_loss, epoch
        return improved

    def replay(self, history: list[dict]) -> None:
        """Feed the ``history.json`` rows of this phase (in epoch order) recorded by an earlier run."""
        for row in sorted(history, key=lambda r: r["epoch"]):
            self.observe(row["epoch"], row["val_loss"])

    def reason_before(self, epoch: int, elapsed_s: float, first: bool = False) -> str | None:
        """The reason not to run epoch ``epoch`` (1-based), or None to run it.

        ``first``: the first epoch of this invocation, which the time cap never
        skips (as before: a phase stops after the epoch that crosses the budget).
        """
        cfg = self.cfg
        if cfg.early_stopping and self.best_epoch and self.last_epoch - self.best_epoch >= cfg.patience:
            return CONVERGED
        if epoch > cfg.epoch_limit:
            return EPOCH_CAP if cfg.early_stopping else EPOCHS
        if cfg.time_budget_s is not None and elapsed_s >= cfg.time_budget_s and not first:
            return TIME_CAP
        return None

    def explain(self, reason: str) -> str:
        """A sentence for the user: why training stopped where it did."""
        cfg = self.cfg
        if reason == CONVERGED:
            return (f"converged: no validation improvement above {cfg.min_delta:g} (relative) for "
                    f"{cfg.patience} epochs since epoch {self.best_epoch}")
        if reason == EPOCH_CAP:
            return (f"epoch cap: reached train.max_epochs={cfg.max_epochs} before converging "
                    f"(last improvement at epoch {self.best_epoch})")
        if reason == EPOCHS:
            return f"ran the {cfg.epochs} epochs asked for (train.epochs; no early stop)"
        if reason == TIME_CAP:
            return f"time cap: train.time_budget_s={cfg.time_budget_s:g} s reached after epoch {self.last_epoch}"
        return f"interrupted after epoch {self.last_epoch}"
