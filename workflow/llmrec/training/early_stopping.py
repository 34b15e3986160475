"""Early stopping on a validation metric, shared by the training loops."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from torch import Tensor, nn

log = logging.getLogger(__name__)


class EarlyStopping:
    """Keep the best state by ``metric`` (higher is better) and say when to stop.

    Args:
        metric: the metric's name, for the log.
        patience: validations without a strict improvement before stopping.
    """

    def __init__(self, metric: str, patience: int) -> None:
        self.metric, self.patience = metric, patience
        self.best_value = float("-inf")
        self.best_state: dict[str, Tensor] | None = None
        self.stale = 0

    def update(self, model: nn.Module, row: Mapping[str, float]) -> bool:
        """Log one validation of ``model`` and keep its state if best; True when to stop.

        ``row`` is the loop's history row: ``epoch``, ``loss``, the metric, ``train_seconds``
        and ``eval_seconds``.
        """
        epoch, value = int(row["epoch"]), float(row[self.metric])
        log.info(
            "epoch %d  loss %.5f  %s %.5f  train %.2fs  eval %.2fs",
            epoch,
            row["loss"],
            self.metric,
            value,
            row["train_seconds"],
            row["eval_seconds"],
        )
        if self.best_state is None or value > self.best_value:
            self.best_value, self.stale = value, 0
            self.best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
            return False
        self.stale += 1
        if self.stale >= self.patience:
            log.info(
                "stopping at epoch %d: no better %s in %d validations (best %.5f)",
                epoch,
                self.metric,
                self.patience,
                self.best_value,
            )
            return True
        return False
