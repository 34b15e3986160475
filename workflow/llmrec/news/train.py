"""Training and scoring loops of the news recommenders (any :class:`NewsRecommender`).

Training follows the MIND reference implementations: a fixed number of epochs; each epoch
draws new negatives for every click (:func:`~llmrec.news.sampling.sample_negatives`, POPK's
popular ones included), shuffles the samples and trains the softmax over each click and its
negatives ((k+1)-way, or (1+k+popk)-way with POPK's added popular negatives) with Adam.
Scoring encodes every article once, then each impression's user from its history, and scores
the impression's candidates by dot product.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from ..progress import Progress
from .data import NewsFeatures, histories, train_batch
from .sampling import Impressions, Popularity, sample_negatives

log = logging.getLogger(__name__)


def train_news_model(
    model: torch.nn.Module,
    features: NewsFeatures,
    imps: Impressions,
    users: np.ndarray,
    *,
    k: int = 4,
    popk: int = 0,
    popularity: Popularity | None = None,
    weighting: str = "uniform",
    mode: str = "add",
    selection: str = "sample",
    epochs: int = 2,
    batch_size: int = 64,
    lr: float = 1e-4,
    history_len: int = 50,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> list[dict]:
    """Train ``model`` in place; return one dict per epoch (loss, samples, dropped, seconds).

    Args:
        users: model user id of each impression (``data.user_numbering``).
        k, popk, popularity, weighting, mode, selection: the sampler's settings
            (``sample_negatives``).
        epochs, batch_size, lr: the optimisation (Adam).
        history_len: latest history articles fed to the user encoder.
        seed: seeds the samples' negatives and order (torch is seeded by the caller).
        progress: show a tqdm bar over each epoch's batches (default True); the log gets a
            line every 30 s either way.
    """
    rng = np.random.default_rng(seed)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        rows, positives, negatives, dropped = sample_negatives(
            imps, k, popk, rng, popularity, weighting, mode=mode, selection=selection
        )
        order = rng.permutation(len(rows))
        model.train()
        total, steps = 0.0, 0
        batches = range(0, len(order), batch_size)
        desc = f"epoch {epoch}/{epochs}"
        with Progress(len(batches), desc, "batches", bar=progress) as done:
            for b in batches:
                idx = order[b : b + batch_size]
                batch = train_batch(
                    features,
                    imps,
                    rows[idx],
                    positives[idx],
                    negatives[idx],
                    users[rows[idx]],
                    history_len,
                )
                batch = _to(batch, device)
                loss = model.loss(model(batch))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach())
                steps += 1
                done.update()
        history.append(
            {
                "epoch": epoch,
                "loss": total / max(steps, 1),
                "samples": len(rows),
                "dropped": dropped,
                "seconds": time.perf_counter() - start,
            }
        )
        log.info(
            "epoch %d: loss %.4f over %d samples (%d clicks dropped) in %.1f s",
            epoch,
            history[-1]["loss"],
            len(rows),
            dropped,
            history[-1]["seconds"],
        )
    return history


def _to(batch: dict, device) -> dict:
    out = {}
    for key, value in batch.items():
        if isinstance(value, dict):
            out[key] = {k: v.to(device) for k, v in value.items()}
        else:
            out[key] = value.to(device)
    return out


@torch.no_grad()
def news_vectors(
    model: torch.nn.Module,
    features: NewsFeatures,
    *,
    batch_size: int = 1024,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Every article's vector from the news encoder, ``[n_items, D]``."""
    model.eval()
    n = len(features.title)
    parts = [
        model.encode_news(_to(features.select(np.arange(s, min(s + batch_size, n))), device))
        for s in range(0, n, batch_size)
    ]
    return torch.cat(parts)


@torch.no_grad()
def score_impressions(
    model: torch.nn.Module,
    features: NewsFeatures,
    imps: Impressions,
    users: np.ndarray,
    *,
    history_len: int = 50,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> list[np.ndarray]:
    """Each impression's candidate scores, in the order the candidates were shown."""
    model.eval()
    vectors = news_vectors(model, features, device=device)
    scores: list[np.ndarray] = []
    for s in range(0, len(imps), batch_size):
        rows = np.arange(s, min(s + batch_size, len(imps)))
        hist, mask = histories(imps, rows, history_len)
        user = model.encode_user(
            vectors[torch.from_numpy(hist).to(device)],
            torch.from_numpy(mask).to(device),
            torch.from_numpy(users[rows].astype(np.int64)).to(device),
        )
        for j, r in enumerate(rows):
            cands = torch.from_numpy(imps.candidates[imps.offsets[r] : imps.offsets[r + 1]])
            scores.append((vectors[cands.to(device)] @ user[j]).cpu().numpy())
    return scores
