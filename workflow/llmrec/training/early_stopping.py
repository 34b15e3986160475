"""Early stopping on a validation metric, shared by the training loops."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from torch import Tensor, nn

from llmrec.evaluation.ranking import METRICS
from llmrec.progress import Progress

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


def fit_with_early_stopping(
    model: nn.Module,
    run_epoch: Callable[[int], float],
    validate: Callable[[], Mapping[str, float]],
    *,
    epochs: int,
    eval_every: int,
    patience: int,
    metric: str,
    progress: bool,
) -> tuple[dict[str, Tensor], list[dict]]:
    """The epoch loop of the training loops: train, validate, keep the best state, stop early.

    Args:
        model: the model being trained; its best state is loaded back at the end.
        run_epoch: trains one epoch (its number from 1) and returns its mean loss.
        validate: the validation metrics of ``model`` now, ``metric`` among them.
        epochs: most epochs to run.
        eval_every: epochs between validations; the last epoch is always validated.
        patience: validations without a strict improvement of ``metric`` before stopping.
        metric: the early-stopping criterion, a key of ``validate``'s result.
        progress: show a tqdm bar over epochs; the log gets a line every 30 s either way.

    Returns:
        The best state (a copy) and one dict per validation: ``epoch``, ``loss`` (of the last
        epoch), the validation metrics, ``train_seconds`` (training since the previous
        validation) and ``eval_seconds``.
    """
    history: list[dict] = []
    stopping = EarlyStopping(metric, patience)
    train_seconds = 0.0
    with Progress(epochs, type(model).__name__, "epochs", bar=progress) as epochs_done:
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            loss = run_epoch(epoch)
            train_seconds += time.perf_counter() - start
            epochs_done.update()
            if epoch % eval_every and epoch != epochs:
                continue

            start = time.perf_counter()
            valid = dict(validate())
            row = {
                "epoch": epoch,
                "loss": loss,
                **valid,
                "train_seconds": train_seconds,
                "eval_seconds": time.perf_counter() - start,
            }
            history.append(row)
            train_seconds = 0.0
            epochs_done.set_postfix(loss=f"{loss:.4f}", **{metric: f"{valid[metric]:.4f}"})
            if stopping.update(model, row):
                break
    model.load_state_dict(stopping.best_state)
    return stopping.best_state, history
