"""An arithmetic task over item numbers, and task vectors to carry what it teaches.

Sequential and random indexing write items as numbers, but a T5 tokenizer sees numbers as
unrelated word pieces. Fine-tuning on simple arithmetic over the item-ID range ("What is
1234 + 17 ?" -> "1251") pushes the number embeddings towards an order, so that nearby IDs look
alike. The result can be used directly, or as a task vector ``tau = theta_ft - theta_base``
added to another model with a coefficient (Ilharco et al. 2023, "Editing Models with Task
Arithmetic", https://arxiv.org/abs/2212.04089).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

FORMS = ("add", "sub", "next", "previous")
"""Question forms of :func:`arithmetic_examples`."""


def _check_forms(forms: Sequence[str]) -> None:
    unknown = [form for form in forms if form not in FORMS]
    if unknown or not forms:
        raise ValueError(
            f"arithmetic forms must be a non-empty selection of {list(FORMS)}, got {list(forms)}"
        )


def _question(
    form: str, low: int, high: int, max_operand: int, rng: np.random.Generator
) -> tuple[str, int]:
    """One question of ``form`` whose operand and answer lie in ``[low, high]``."""
    if form in ("add", "sub"):
        # The small operand is at most the range's width, so some first operand always fits.
        b = int(rng.integers(1, min(max_operand, high - low) + 1))
        if form == "add":
            a = int(rng.integers(low, high - b + 1))
            return f"What is {a} + {b} ?", a + b
        a = int(rng.integers(low + b, high + 1))
        return f"What is {a} - {b} ?", a - b
    if form == "next":
        a = int(rng.integers(low, high))
        return f"What number comes after {a} ?", a + 1
    a = int(rng.integers(low + 1, high + 1))
    return f"What number comes before {a} ?", a - 1


def arithmetic_examples(
    n: int,
    *,
    low: int,
    high: int,
    forms: Sequence[str],
    rng: np.random.Generator,
    max_operand: int = 100,
) -> list[tuple[str, str]]:
    """``n`` (question, answer) pairs over the numbers ``low .. high``.

    Each pair draws its form uniformly from ``forms``: ``"add"`` ("What is 1234 + 17 ?" ->
    "1251"), ``"sub"`` ("What is 1234 - 17 ?" -> "1217"), ``"next"`` ("What number comes after
    1234 ?" -> "1235") or ``"previous"`` ("What number comes before 1234 ?" -> "1233"). The
    first operand and the answer always lie in ``[low, high]``; numbers are whole words.

    Args:
        n: number of pairs.
        low: smallest number, e.g. the first item ID.
        high: largest number, e.g. the last item ID; must exceed ``low``.
        forms: which question forms to draw from (names in :data:`FORMS`).
        rng: the generator; the result depends only on its state.
        max_operand: largest second operand of ``"add"`` and ``"sub"``. (default: :obj:`100`)
    """
    _check_forms(forms)
    if high <= low:
        raise ValueError(
            f"arithmetic needs a range with at least two numbers, got low={low}, high={high}"
        )
    if n < 0 or max_operand < 1:
        raise ValueError(f"need n >= 0 and max_operand >= 1, got n={n}, max_operand={max_operand}")
    examples = []
    for _ in range(n):
        form = forms[int(rng.integers(len(forms)))]
        question, answer = _question(form, low, high, max_operand, rng)
        examples.append((question, str(answer)))
    return examples


def task_vector(finetuned: Mapping[str, Tensor], base: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``tau = finetuned - base`` for every floating-point tensor of two state dicts.

    Integer and boolean tensors (step counters, masks, other buffers) have no meaningful
    difference and are left out.

    Args:
        finetuned: the state dict after fine-tuning.
        base: the state dict before, with the same keys and shapes.
    """
    missing, extra = sorted(set(base) - set(finetuned)), sorted(set(finetuned) - set(base))
    if missing or extra:
        raise ValueError(
            f"state dicts differ in keys: only in base {missing}, only in "
            f"fine-tuned {extra}; were they saved from the same architecture?"
        )
    tau = {}
    for key, weights in finetuned.items():
        if weights.shape != base[key].shape or weights.dtype != base[key].dtype:
            raise ValueError(
                f"{key!r} is {tuple(weights.shape)} {weights.dtype} fine-tuned but "
                f"{tuple(base[key].shape)} {base[key].dtype} in base"
            )
        if torch.is_floating_point(weights):
            tau[key] = weights.detach() - base[key].detach()
    return tau


def apply_task_vector(
    state: Mapping[str, Tensor], tau: Mapping[str, Tensor], coefficient: float
) -> dict[str, Tensor]:
    """A new state dict ``theta + coefficient * tau``; tensors without a ``tau`` are copied.

    Args:
        state: the state dict ``theta`` to edit; not modified.
        tau: a task vector from :func:`task_vector`; its keys must be in ``state``.
        coefficient: the scale ``lambda`` of ``tau``.
    """
    unknown = sorted(set(tau) - set(state))
    if unknown:
        raise ValueError(f"task vector has keys the state dict lacks: {unknown}")
    edited = {}
    for key, weights in state.items():
        weights = weights.detach()
        if key not in tau:
            edited[key] = weights.clone()
            continue
        if tau[key].shape != weights.shape:
            raise ValueError(
                f"{key!r}: task vector is {tuple(tau[key].shape)}, state is {tuple(weights.shape)}"
            )
        edited[key] = (weights + coefficient * tau[key]).to(weights.dtype)
    return edited


def number_similarity(embeddings: Tensor, token_ids: Sequence[int]) -> np.ndarray:
    """Cosine similarity of the embeddings of consecutive tokens, e.g. of "00", "01", ... "99".

    Args:
        embeddings: the ``(vocabulary, dim)`` input embedding matrix.
        token_ids: the tokens in the order to compare, at least two.

    Returns:
        ``len(token_ids) - 1`` similarities; entry ``i`` compares tokens ``i`` and ``i+1``.
    """
    if len(token_ids) < 2:
        raise ValueError(f"need at least two token ids to compare, got {len(token_ids)}")
    ids = torch.as_tensor(list(token_ids), dtype=torch.long)
    if ids.min() < 0 or ids.max() >= embeddings.shape[0]:
        raise ValueError(f"token ids must lie in 0..{embeddings.shape[0] - 1}")
    vectors = embeddings.detach()[ids].double()
    return F.cosine_similarity(vectors[:-1], vectors[1:], dim=1).cpu().numpy()
