"""P5 arithmetic task: correct answers in range, task vectors exact on a tiny model."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

from llmrec.p5.arithmetic import (
    FORMS,
    apply_task_vector,
    arithmetic_examples,
    number_similarity,
    split_facts,
    task_vector,
)

PATTERNS = {
    "add": (r"What is (\d+) \+ (\d+) \?", lambda a, b: a + b),
    "sub": (r"What is (\d+) - (\d+) \?", lambda a, b: a - b),
    "next": (r"What number comes after (\d+) \?", lambda a: a + 1),
    "previous": (r"What number comes before (\d+) \?", lambda a: a - 1),
}


def solve(question: str) -> tuple[str, list[int], int]:
    """The form, operands and true answer of a question, parsed back from its text."""
    for form, (pattern, answer) in PATTERNS.items():
        match = re.fullmatch(pattern, question)
        if match:
            operands = [int(x) for x in match.groups()]
            return form, operands, answer(*operands)
    raise AssertionError(f"unparseable question {question!r}")


@pytest.mark.parametrize(
    "low,high,max_operand", [(1001, 2349, 100), (1001, 1005, 100), (1001, 1002, 1)]
)
def test_answers_are_correct_and_in_range(low, high, max_operand):
    examples = arithmetic_examples(
        400, low=low, high=high, forms=FORMS, rng=np.random.default_rng(0), max_operand=max_operand
    )
    assert len(examples) == 400
    seen_forms = set()
    for question, answer in examples:
        form, operands, truth = solve(question)
        seen_forms.add(form)
        assert answer == str(truth)
        assert low <= operands[0] <= high and low <= truth <= high
        if form in ("add", "sub"):
            assert 1 <= operands[1] <= max_operand
    assert seen_forms == set(FORMS)


def test_only_selected_forms_appear():
    examples = arithmetic_examples(
        50, low=1001, high=1100, forms=["next"], rng=np.random.default_rng(1)
    )
    assert {solve(q)[0] for q, _ in examples} == {"next"}


@pytest.mark.parametrize("forms", [["add", "multiply"], []])
def test_forms_are_validated(forms):
    with pytest.raises(ValueError, match="arithmetic forms"):
        arithmetic_examples(5, low=1001, high=1100, forms=forms, rng=np.random.default_rng(0))


def test_range_needs_two_numbers():
    with pytest.raises(ValueError, match="at least two numbers"):
        arithmetic_examples(5, low=1001, high=1001, forms=FORMS, rng=np.random.default_rng(0))


def test_examples_are_deterministic_given_seed():
    def run(seed: int) -> list[tuple[str, str]]:
        return arithmetic_examples(
            100, low=1001, high=2000, forms=FORMS, rng=np.random.default_rng(seed)
        )

    assert run(3) == run(3)
    assert run(3) != run(4)


def fact(question: str) -> tuple[int, int]:
    """The fact (smaller number, difference) a question states, whatever its form."""
    form, operands, truth = solve(question)
    if form == "add":
        return operands[0], operands[1]
    if form == "sub":
        return truth, operands[1]
    return min(operands[0], truth), 1


def split(low=1001, high=1400, max_operand=10, share=0.1, seed=0):
    return split_facts(
        low, high, max_operand=max_operand, share=share, rng=np.random.default_rng(seed)
    )


def test_held_out_problems_are_never_trained_on_in_any_form():
    held_out = split()
    kwargs = dict(low=1001, high=1400, max_operand=10, held_out=held_out)
    train = arithmetic_examples(20_000, forms=FORMS, rng=np.random.default_rng(1), **kwargs)
    test = arithmetic_examples(
        2_000, forms=FORMS, rng=np.random.default_rng(2), part="held_out", **kwargs
    )
    held_facts = {(int(x), d) for d, xs in held_out.items() for x in xs}
    for form in FORMS:
        trained = {q for q, _ in train if solve(q)[0] == form}
        tested = {q for q, _ in test if solve(q)[0] == form}
        assert len(trained) > 300 and len(tested) > 30  # not vacuous
        assert not trained & tested  # no held-out problem's source string was trained on
        assert all(fact(q) in held_facts for q in tested)
        assert not any(fact(q) in held_facts for q in trained)
    # The same fact in another form is held out too: "1200 + 3" held out means "1203 - 3" is.
    assert not {fact(q) for q, _ in train} & {fact(q) for q, _ in test}
    for question, answer in test:
        assert answer == str(solve(question)[2])


def test_the_held_out_share_of_facts_per_difference():
    held_out = split(low=1001, high=1400, max_operand=10, share=0.1)
    assert sorted(held_out) == list(range(1, 11))
    for d, xs in held_out.items():
        n_d = 1400 - d - 1001 + 1
        assert len(xs) == round(0.1 * n_d) and len(set(xs)) == len(xs)
        assert xs.min() >= 1001 and xs.max() + d <= 1400
    assert all(np.array_equal(held_out[d], split()[d]) for d in held_out)  # seeded
    assert not all(np.array_equal(held_out[d], split(seed=1)[d]) for d in held_out)


def test_a_tiny_range_keeps_a_fact_on_each_side_where_it_can():
    held_out = split(low=1001, high=1003, max_operand=5, share=0.01)
    # d = 1: facts 1001+1, 1002+1: one held out, one trained; d = 2: the lone fact trains.
    assert len(held_out[1]) == 1 and len(held_out[2]) == 0
    kwargs = dict(low=1001, high=1003, max_operand=5, held_out=held_out)
    test = arithmetic_examples(
        50, forms=FORMS, rng=np.random.default_rng(0), part="held_out", **kwargs
    )
    assert {fact(q) for q, _ in test} == {(int(held_out[1][0]), 1)}
    with pytest.raises(ValueError, match="no facts"):
        arithmetic_examples(
            5,
            low=1001,
            high=1002,
            forms=["next"],
            rng=np.random.default_rng(0),
            held_out=split(low=1001, high=1002, share=0.5),
            part="held_out",
        )


@pytest.mark.parametrize("share", [0, 1, -0.1])
def test_held_out_share_is_validated(share):
    with pytest.raises(ValueError, match="held-out share"):
        split(share=share)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.register_buffer("steps", torch.tensor([5, 7], dtype=torch.int64))
        self.register_buffer("mask", torch.tensor([True, False]))


def tiny_states() -> tuple[dict, dict]:
    torch.manual_seed(0)
    base = Tiny()
    finetuned = Tiny()
    finetuned.steps += 3  # integer buffers differ too, but have no task vector
    return base.state_dict(), finetuned.state_dict()


def snapshot(state: dict) -> dict:
    return {k: v.clone() for k, v in state.items()}


def test_task_vector_is_exact():
    base, finetuned = tiny_states()
    base_before, finetuned_before = snapshot(base), snapshot(finetuned)
    tau = task_vector(finetuned, base)
    assert set(tau) == {"linear.weight", "linear.bias"}
    for key in tau:
        assert torch.equal(tau[key], finetuned[key] - base[key])

    coefficient = 0.37
    edited = apply_task_vector(base, tau, coefficient)
    for key in tau:
        manual = base[key] + coefficient * (finetuned[key] - base[key])
        assert torch.equal(edited[key], manual) and edited[key].dtype == base[key].dtype
    assert torch.equal(edited["steps"], base["steps"]) and torch.equal(edited["mask"], base["mask"])
    assert edited["steps"].data_ptr() != base["steps"].data_ptr()  # a copy, not an alias

    recovered = apply_task_vector(base, tau, 1.0)
    for key in tau:
        assert torch.allclose(recovered[key], finetuned[key], rtol=0, atol=1e-6)
    for before, after in ((base_before, base), (finetuned_before, finetuned)):
        assert all(torch.equal(before[k], after[k]) for k in before)


def test_task_vector_loads_into_the_model():
    base, finetuned = tiny_states()
    model = Tiny()
    model.load_state_dict(apply_task_vector(base, task_vector(finetuned, base), 0.5))
    assert torch.equal(
        model.linear.bias,
        base["linear.bias"] + 0.5 * (finetuned["linear.bias"] - base["linear.bias"]),
    )


def test_task_vector_rejects_mismatched_states():
    base, finetuned = tiny_states()
    with pytest.raises(ValueError, match="differ in keys"):
        task_vector({k: v for k, v in finetuned.items() if k != "linear.bias"}, base)
    with pytest.raises(ValueError, match="'linear.weight'"):
        task_vector({**finetuned, "linear.weight": torch.zeros(2, 2)}, base)
    with pytest.raises(ValueError, match="lacks"):
        apply_task_vector(base, {"other.weight": torch.zeros(1)}, 1.0)


def test_number_similarity():
    embeddings = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0], [-3.0, 0.0]])
    sims = number_similarity(embeddings, [0, 1, 2, 3])
    np.testing.assert_allclose(sims, [1 / np.sqrt(2), 1 / np.sqrt(2), 0.0], atol=1e-12)
    np.testing.assert_allclose(number_similarity(embeddings, [3, 0]), [-1.0])
    with pytest.raises(ValueError, match="at least two"):
        number_similarity(embeddings, [1])
    with pytest.raises(ValueError, match="0..3"):
        number_similarity(embeddings, [0, 4])


def test_the_studys_held_out_problems_are_not_among_its_training_problems():
    from llmrec.studies.arithmetic import _arithmetic_examples, held_out_problems

    index = [str(n) for n in range(1001, 1501)]
    task = {"forms": list(FORMS), "examples": 5_000, "max_operand": 10, "held_out": 0.1}
    for seed in (0, 1):
        trained = {
            q for epoch in range(3) for q, _ in _arithmetic_examples(task, index, seed, epoch)
        }
        tested = held_out_problems(task, index, seed)
        assert len(tested) == 256
        for form in FORMS:
            of_form = {q for q, _ in tested if solve(q)[0] == form}
            assert of_form and not of_form & trained, form
