"""When a training phase stops, and why.

Two modes, chosen by :class:`~inspector.training.config.TrainConfig`:

- ``epochs`` set: exactly that many epochs (``--epochs N``), no early stop.
- ``epochs`` unset: early stopping on the validation loss (Prechelt 1998,
  "Early stopping — but when?"): stop once ``patience`` epochs in a row brought
  no relative improvement above ``min_delta``, at most ``max_epochs`` epochs.
  With ``lr_decay: plateau`` a plateau of ``lr_plateau`` (default ``patience``) such
  epochs first multiplies the learning rate by ``lr_decay_factor`` (PyTorch's
  ``ReduceLROnPlateau``, Keras' recipe of decaying before stopping), up to
  ``lr_decays`` times; a plateau at the last rate stops the phase.

Early stopping also ends a phase on its generalisation gap, the validation loss over the seen loss
(the same measure, in eval mode, on as many evenly spaced training images) minus 1. Once the gap has
grown by more than ``max_gap_growth`` beyond its narrowest point of the phase for ``gap_patience``
epochs in a row, the student fits the images it trains on better than unseen good ones, and from
there it learns those images rather than the product (benchmarks/README.md
"Session 25": on KolektorSDD's 178 training images the image AUROC falls as the gap opens, while the
validation loss keeps falling). This is the generalisation-loss criterion of Prechelt's paper (GL_α,
§2.2: stop when the validation error exceeds its optimum by α %), measured against the training
images instead of the optimum, which a still-falling validation loss never leaves.

The best checkpoint is still the lowest validation loss seen (any improvement);
``min_delta`` only decides when improvements are too small to keep going.

Over the last ``lr_anneal`` fraction of the budget (epoch limit or time cap,
whichever ends first) :meth:`StopRule.rate` lowers the rate linearly to 0
(:class:`~inspector.artifacts.run_config.TrainConfig` gives the sources).

A time cap (``time_budget_s``, per phase and per invocation; each invocation
runs at least one epoch) applies in both modes. The rule is replayable
from the recorded validation losses, so ``--resume`` continues with the same
patience count as the run it extends.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from inspector.config import bounded, from_dict
from inspector.training.config import TrainConfig

# Why a phase stopped, as recorded in summary.json (``stop_reason``).
CONVERGED = "converged"  # early stopping: patience ran out
GAP = "generalisation_gap"  # early stopping: unseen good images fit worse than seen ones for gap_patience epochs
EPOCH_CAP = "epoch_cap"  # early stopping: max_epochs reached before convergence
EPOCHS = "epochs"  # the forced epoch count (--epochs N) was run
TIME_CAP = "time_cap"  # time_budget_s reached
INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM
STOP_REASONS = (CONVERGED, GAP, EPOCH_CAP, EPOCHS, TIME_CAP, INTERRUPTED)


@dataclass(frozen=True)
class ScheduleState:
    """The learning-rate schedule of one phase after its last epoch (checkpoint field ``lr_schedule``).

    ``lr``: the rate the next epoch trains at; ``decays``: plateaus that decayed it so
    far; ``decay_epoch``: the epoch after which the last decay happened (0: none).
    """

    phase: str
    lr: float = bounded(gt=0, le=100)
    decays: int = bounded(ge=0, le=10)
    decay_epoch: int = bounded(ge=0, le=100_000)

    @classmethod
    def parse(cls, data: Any, where: str) -> "ScheduleState":
        """From a checkpoint's plain data; ConfigError (one line naming ``where``) when malformed."""
        return from_dict(cls, data, where=where)

    def to_dict(self) -> dict:
        return asdict(self)


class StopRule:
    """Tracks validation losses of one phase: whether the next epoch may run, and at which learning rate."""

    def __init__(self, cfg: TrainConfig, measures_gap: bool = True, nll_dims: int | None = None) -> None:
        """``measures_gap``: False for a phase whose loss has no generalisation gap (``Phase.measures_gap``).
        ``nll_dims``: the loss is a negative log-likelihood over that many dimensions per position
        (``Phase.nll_dims``), so an improvement must exceed ``min_delta`` nats per dimension."""
        self.cfg = cfg
        self.measures_gap = measures_gap
        self.nll_dims = nll_dims
        self.best = math.inf  # best loss that counted as a (significant) improvement
        self.best_epoch = 0
        self.last_epoch = 0
        self.lr = cfg.lr  # the rate of the next epoch
        self.decays = 0
        self.decay_epoch = 0
        self.gap_epochs = 0  # consecutive epochs, up to the last, whose gap had grown by more than max_gap_growth
        self.gap = math.nan  # the last epoch's gap (validation ÷ seen loss − 1); nan: not measurable
        self.narrowest_gap = math.inf  # the smallest gap of this phase so far

    @property
    def plateau(self) -> int:
        """Epochs without improvement that make a plateau: ``lr_plateau`` when a plateau decays the rate,
        else (and by default) ``patience``, so the first decay comes exactly where a constant-rate run
        would stop: the run is that run, extended (benchmarks/README.md "Session 6": half the patience
        fired on validation noise and stopped ELPV mono at a higher loss)."""
        if not self.cfg.plateau_decay:
            return self.cfg.patience
        return self.cfg.lr_plateau or self.cfg.patience

    @property
    def stale(self) -> int:
        """Epochs since the last significant improvement or rate decay, whichever came later."""
        return self.last_epoch - max(self.best_epoch, self.decay_epoch)

    def observe(self, epoch: int, val_loss: float, seen_loss: float | None = None) -> bool:
        """Record epoch ``epoch``'s validation loss (and seen loss: the same measure on as many training
        images, None when not recorded); True when the validation loss improved by more than min_delta.

        A plateau with decays left multiplies :attr:`lr` by ``lr_decay_factor``.
        """
        self.last_epoch = epoch
        self._observe_gap(val_loss, seen_loss)
        improved = val_loss < self.best - self.min_improvement if math.isfinite(self.best) \
            else math.isfinite(val_loss)
        if improved:
            self.best, self.best_epoch = val_loss, epoch
        elif self.cfg.plateau_decay and self.best_epoch and self.decays < self.cfg.lr_decays \
                and self.stale >= self.plateau:
            self.lr *= self.cfg.lr_decay_factor
            self.decays += 1
            self.decay_epoch = epoch
        return improved

    @property
    def min_improvement(self) -> float:
        """How far below the best loss a validation loss must be to count as an improvement.

        ``min_delta`` relative to the best loss for a distance (scale-free), but in nats per dimension for a
        negative log-likelihood: its zero is arbitrary (a constant dropped, the features' scale), so a relative
        threshold shrinks to nothing where the loss crosses 0 and a flow whose NLL passes through it never
        converges (benchmarks/README.md "Session 30").
        """
        if self.nll_dims:
            return self.cfg.min_delta * self.nll_dims
        return self.cfg.min_delta * abs(self.best)

    @property
    def gap_growth(self) -> float:
        """How far the last epoch's gap is above the narrowest gap so far (nan when not measurable)."""
        return self.gap - self.narrowest_gap if math.isfinite(self.gap) else math.nan

    def _observe_gap(self, val_loss: float, seen_loss: float | None) -> None:
        """Count the epochs in a row whose generalisation gap grew by more than ``max_gap_growth``
        beyond its narrowest point.

        Growth, not the gap itself: a validation split can be harder (or easier) than the training
        images from the first epoch on, before the student has learned any of them, and that offset is
        no sign of memorising. The gap is a ratio of distances, so only positive finite losses have
        one: a flow's negative log-likelihood (AST's teacher) has none, and an epoch without a seen
        loss breaks the count.
        """
        measurable = self.measures_gap and seen_loss is not None and all(math.isfinite(x) and x > 0 for x in (val_loss, seen_loss))
        self.gap = val_loss / seen_loss - 1 if measurable else math.nan
        if measurable:
            self.narrowest_gap = min(self.narrowest_gap, self.gap)
        limit = self.cfg.max_gap_growth
        over = measurable and limit is not None and self.gap_growth > limit
        self.gap_epochs = self.gap_epochs + 1 if over else 0

    def budget_progress(self, epoch: int, epoch_fraction: float, elapsed_s: float) -> float:
        """How much of the phase's budget is spent, in [0, 1]: the larger of the epoch share
        (``epoch`` 1-based, ``epoch_fraction`` ∈ [0, 1] of it done, over the epoch limit) and the
        time share (``elapsed_s`` seconds this invocation over ``time_budget_s``, when set)."""
        spent = (epoch - 1 + epoch_fraction) / self.cfg.epoch_limit
        if self.cfg.time_budget_s is not None:
            spent = max(spent, elapsed_s / self.cfg.time_budget_s)
        return min(max(spent, 0.0), 1.0)

    def rate(self, progress: float) -> float:
        """The learning rate of a step at ``progress`` (:meth:`budget_progress`): :attr:`lr` (the
        plateau schedule) until ``1 − lr_anneal``, then falling linearly to 0 at the budget's end."""
        anneal = self.cfg.lr_anneal
        if anneal <= 0 or progress <= 1 - anneal:
            return self.lr
        return self.lr * max(0.0, 1.0 - progress) / anneal

    def state(self, phase: str) -> ScheduleState:
        """The schedule to store in a checkpoint, so ``--resume`` continues it."""
        return ScheduleState(phase=phase, lr=self.lr, decays=self.decays, decay_epoch=self.decay_epoch)

    def restore(self, state: ScheduleState) -> None:
        """Continue the schedule a checkpoint recorded (after :meth:`replay` of the same phase's history)."""
        self.lr, self.decays, self.decay_epoch = state.lr, state.decays, state.decay_epoch

    def replay(self, history: list[dict]) -> None:
        """Feed the ``history.json`` rows of this phase (in epoch order) recorded by an earlier run
        (rows written before the seen loss was recorded have no gap)."""
        for row in sorted(history, key=lambda r: r["epoch"]):
            self.observe(row["epoch"], row["val_loss"], row.get("seen_loss"))

    def reason_before(self, epoch: int, elapsed_s: float, first: bool = False) -> str | None:
        """The reason not to run epoch ``epoch`` (1-based), or None to run it.

        ``first``: the first epoch of this invocation, which the time cap never
        skips (as before: a phase stops after the epoch that crosses the budget).
        """
        cfg = self.cfg
        last_rate = not cfg.plateau_decay or self.decays >= cfg.lr_decays
        if cfg.early_stopping and self.best_epoch and last_rate and self.stale >= self.plateau:
            return CONVERGED
        if cfg.early_stopping and self.gap_epochs >= cfg.gap_patience:
            return GAP
        if epoch > cfg.epoch_limit:
            return EPOCH_CAP if cfg.early_stopping else EPOCHS
        if cfg.time_budget_s is not None and elapsed_s >= cfg.time_budget_s and not first:
            return TIME_CAP
        return None

    def explain(self, reason: str) -> str:
        """A sentence for the user: why training stopped where it did."""
        cfg = self.cfg
        if reason == CONVERGED:
            since = max(self.best_epoch, self.decay_epoch)
            rate = (f" at the last learning rate {self.lr:g} ({self.decays} plateau decay(s) by "
                    f"{cfg.lr_decay_factor:g})" if cfg.plateau_decay else "")
            unit = f"nats per dimension ({self.nll_dims})" if self.nll_dims else "(relative)"
            return (f"converged: no validation improvement above {cfg.min_delta:g} {unit} for "
                    f"{self.plateau} epochs{rate} since epoch {since}")
        if reason == GAP:
            return (f"generalisation gap: for {self.gap_epochs} epochs in a row the validation loss's excess over "
                    f"the loss on as many training images grew by more than train.max_gap_growth="
                    f"{cfg.max_gap_growth:g} beyond its narrowest ({self.narrowest_gap:+.1%}, now "
                    f"{self.gap:+.1%}): the student fits the images it trains on better than unseen good ones; "
                    f"the weights of the lowest validation loss are kept")
        if reason == EPOCH_CAP:
            return (f"epoch cap: reached train.max_epochs={cfg.max_epochs} before converging "
                    f"(last improvement at epoch {self.best_epoch})")
        if reason == EPOCHS:
            return f"ran the {cfg.epochs} epoch{'' if cfg.epochs == 1 else 's'} asked for (train.epochs; no early stop)"
        if reason == TIME_CAP:
            return f"time cap: train.time_budget_s={cfg.time_budget_s:g} s reached after epoch {self.last_epoch}"
        return f"interrupted after epoch {self.last_epoch}"
