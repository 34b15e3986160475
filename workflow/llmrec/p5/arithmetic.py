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


def _differences(low: int, high: int, max_operand: int) -> range:
    """The differences ``d`` a fact ``x + d = y`` can have: the second operand of add and sub
    is at most the range's width, so some first operand always fits; next and previous are
    ``d = 1``."""
    return range(1, min(max_operand, high - low) + 1)


def split_facts(
    low: int, high: int, *, max_operand: int, share: float, rng: np.random.Generator
) -> dict[int, np.ndarray]:
    """Facts ``x + d = x + d`` held out of arithmetic training, so that accuracy is measured on
    problems never trained on.

    A fact is the pair (x, d) of its smaller number ``x`` and difference ``d``; every form
    that states it is held out with it: "x + d", "(x+d) - d", and for ``d = 1`` "after x" and
    "before x+1". For each ``d``, ``round(share * n_d)`` of its ``n_d`` facts are held out, at
    least one and at most ``n_d - 1`` where ``n_d >= 2`` (a lone fact stays in training).

    Args:
        low: smallest number.
        high: largest number; must exceed ``low``.
        max_operand: largest difference of add and sub.
        share: share of the facts held out, in ``(0, 1)``.
        rng: the generator; the split depends only on its state.

    Returns:
        ``held_out[d]``: the sorted smaller numbers ``x`` of the held-out facts with difference
        ``d``, for every ``d`` in ``1 .. min(max_operand, high - low)``.
    """
    _check_range(low, high, max_operand)
    if not 0 < share < 1:
        raise ValueError(f"the held-out share of arithmetic facts must lie in (0, 1), got {share}")
    held_out = {}
    for d in _differences(low, high, max_operand):
        n_d = high - d - low + 1
        count = 0 if n_d < 2 else min(max(round(share * n_d), 1), n_d - 1)
        held_out[d] = np.sort(low + rng.choice(n_d, size=count, replace=False))
    return held_out


def _check_range(low: int, high: int, max_operand: int) -> None:
    if high <= low:
        raise ValueError(
            f"arithmetic needs a range with at least two numbers, got low={low}, high={high}"
        )
    if max_operand < 1:
        raise ValueError(f"need max_operand >= 1, got {max_operand}")


def _question(form: str, x: int, d: int) -> tuple[str, int]:
    """The question of ``form`` that states the fact ``x + d = x + d``, and its answer."""
    if form == "add":
        return f"What is {x} + {d} ?", x + d
    if form == "sub":
        return f"What is {x + d} - {d} ?", x
    if form == "next":
        return f"What number comes after {x} ?", x + 1
    return f"What number comes before {x + 1} ?", x


def arithmetic_examples(
    n: int,
    *,
    low: int,
    high: int,
    forms: Sequence[str],
    rng: np.random.Generator,
    max_operand: int = 100,
    held_out: Mapping[int, np.ndarray] | None = None,
    part: str = "train",
) -> list[tuple[str, str]]:
    """``n`` (question, answer) pairs over the numbers ``low .. high``.

    Each pair draws its form uniformly from ``forms``: ``"add"`` ("What is 1234 + 17 ?" ->
    "1251"), ``"sub"`` ("What is 1234 - 17 ?" -> "1217"), ``"next"`` ("What number comes after
    1234 ?" -> "1235") or ``"previous"`` ("What number comes before 1234 ?" -> "1233"). The
    first operand and the answer always lie in ``[low, high]``; numbers are whole words. Add and
    sub draw the second operand uniformly, then the first uniformly among those that fit.

    Args:
        n: number of pairs.
        low: smallest number, e.g. the first item ID.
        high: largest number, e.g. the last item ID; must exceed ``low``.
        forms: which question forms to draw from (names in :data:`FORMS`).
        rng: the generator; the result depends only on its state.
        max_operand: largest second operand of ``"add"`` and ``"sub"``. (default: :obj:`100`)
        held_out: the held-out facts of :func:`split_facts` (same range and ``max_operand``), or
            ``None``: every fact may be drawn. (default: :obj:`None`)
        part: with ``held_out``, ``"train"`` draws only the other facts, ``"held_out"`` only
            these. (default: :obj:`"train"`)
    """
    _check_forms(forms)
    _check_range(low, high, max_operand)
    if n < 0:
        raise ValueError(f"need n >= 0, got n={n}")
    if part not in ("train", "held_out"):
        raise ValueError(f"part must be 'train' or 'held_out', got {part!r}")
    facts = {}  # per difference, the smaller numbers that may be drawn
    for d in _differences(low, high, max_operand):
        x = np.arange(low, high - d + 1)
        if held_out is not None:
            chosen = np.isin(x, held_out[d])
            x = x[chosen] if part == "held_out" else x[~chosen]
        if len(x):
            facts[d] = x
    differences = sorted(facts)
    if not differences or (1 not in facts and {"next", "previous"} & set(forms)):
        raise ValueError(
            f"the {part} part has no facts for the forms {list(forms)} over {low}..{high}; "
            "hold out a larger share or widen the range"
        )
    examples = []
    for _ in range(n):
        form = forms[int(rng.integers(len(forms)))]
        d = 1 if form in ("next", "previous") else differences[int(rng.integers(len(differences)))]
        x = int(facts[d][int(rng.integers(len(facts[d])))])
        question, answer = _question(form, x, d)
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
