"""Early stopping on a validation metric, shared by the training loops."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from torch import Tensor, nn

from llmrec.evaluation.ranking import METRICS

log = logging.getLogger(__name__)


def check_schedule(metric: str, epochs: int, eval_every: int, patience: int) -> int:
    """Check a training loop's stopping arguments; return the cut-off k of ``metric``.

    ``metric`` must be ``name@k`` with a name among ``llmrec.evaluation.ranking.METRICS``;
    ``epochs``, ``eval_every`` and ``patience`` must be at least 1.
    """
    name, _, k = metric.partition("@")
    if name not in METRICS or not k.isdigit() or int(k) < 1:
        raise ValueError(
            f"metric must look like 'recall@20' or 'ndcg@10', a name among {METRICS} and a "
            f"cut-off, got {metric!r}"
        )
    if min(epochs, eval_every, patience) < 1:
        raise ValueError(
            f"epochs, eval_every and patience must be at least 1, got {epochs}, "
            f"{eval_every} and {patience}"
        )
    return int(k)


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
