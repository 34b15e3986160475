"""P5's tokenizer, model and constrained decoding: number pieces, whole words, valid beams."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from llmrec.p5.decoding import Trie, recommend
from llmrec.p5.model import IGNORE_INDEX, P5, build_t5, collate
from llmrec.p5.tokenizer import (
    digit_pieces,
    load_tokenizer,
    pretrained_tokenizer,
    train_tokenizer,
    whole_word_ids,
)

# Only the digits 0, 1 and 2 occur in the corpus's numbers, so every other digit piece exists
# only because the tokenizer adds it.
CORPUS_ITEMS = [str(n) for n in (1001, 1002, 1010, 1011, 1012, 1020, 1100, 1101, 1200)]
CORPUS = [
    f"user_{u} has interacted with items {CORPUS_ITEMS[u % 9]} , {CORPUS_ITEMS[(u + 4) % 9]}"
    f" . What is the next item ?"
    for u in range(3)
]
CORPUS += [
    "Here is the history of user_1 : items <c3><c17><c5> , <c3><c2> .",
    "<c1><c5>",
] + CORPUS_ITEMS
ITEMS = [str(1001 + 7 * i) for i in range(26)] + ["10015", "<c3><c17><c5>", "<c3><c2>", "<c1><c5>"]


def prompts(n: int) -> list[str]:
    return [
        f"user_{u} has interacted with items {ITEMS[u % 26]} , {ITEMS[(3 * u) % 30]} . "
        f"What is the next item ?"
        for u in range(n)
    ]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return train_tokenizer(iter(CORPUS), 200, tmp_path_factory.mktemp("p5") / "tokenizer")


def tiny_p5(tokenizer, whole_word: bool = False, seed: int = 0, dropout: float = 0.1) -> P5:
    torch.manual_seed(seed)
    return P5(
        build_t5(len(tokenizer), d_model=32, d_ff=64, num_heads=2, d_kv=16, dropout=dropout),
        whole_word=whole_word,
    )


# --- tokenizer -------------------------------------------------------------------------------


def test_special_tokens_and_eos(tokenizer):
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert tokenizer("items 1001").input_ids[-1] == 1


def test_numbers_split_into_two_digit_pieces(tokenizer):
    assert tokenizer.tokenize("1234") == ["▁12", "34"]
    assert tokenizer.tokenize("12345") == ["▁12", "34", "5"]
    pieces = set(digit_pieces())
    for number in range(1001, 3000):
        ids = tokenizer(str(number)).input_ids
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.convert_ids_to_tokens(ids[:-1]) == [
            f"▁{number // 100}",
            f"{number % 100:02d}",
        ]
    assert pieces <= set(tokenizer.get_vocab())


def test_codes_are_atomic_and_text_round_trips(tokenizer):
    assert tokenizer.tokenize("<c3><c17><c5>") == ["<c3>", "<c17>", "<c5>"]
    text = "user_7 has interacted with items 2999 , <c3><c17><c5> , 1001 ."
    ids = tokenizer(text).input_ids
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_whole_words_are_pieces_not_letters(tokenizer):
    # HF's Unigram trainer alone would cut such words into letters (see _training_text).
    assert tokenizer.tokenize("has interacted with") == ["▁has", "▁interacted", "▁with"]


def test_save_and_load_replace_the_folder(tokenizer, tmp_path):
    folder = tmp_path / "tok"
    train_tokenizer(["a first corpus 1001"], 50, folder)
    train_tokenizer(iter(CORPUS), 200, folder)
    loaded = load_tokenizer(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok"]
    assert loaded("items 2999 <c5>").input_ids == tokenizer("items 2999 <c5>").input_ids
    with pytest.raises(ValueError, match="empty"):
        train_tokenizer([], 50, tmp_path / "empty")
    assert not (tmp_path / "empty").exists()


def test_training_is_deterministic(tmp_path):
    # HF's trainer alone gives other scores and ids on every run (hash-map order).
    for name in ("a", "b"):
        train_tokenizer(iter(CORPUS), 200, tmp_path / name)
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (
        tmp_path / "b" / "tokenizer.json"
    ).read_bytes()


def test_whole_word_ids_by_hand(tokenizer):
    tokens = ["▁10", "01", "▁", "<c3>", "<c5>", "▁12", "</s>", "<pad>"]
    ids = tokenizer.convert_tokens_to_ids(tokens)
    assert whole_word_ids(ids, tokenizer) == [1, 1, 2, 2, 2, 3, 0, 0]
    assert whole_word_ids(ids, tokenizer, max_words=3) == [1, 1, 2, 2, 2, 2, 0, 0]
    # A text that starts without a marker still starts a word.
    assert whole_word_ids(tokenizer.convert_tokens_to_ids(["01", "▁12"]), tokenizer) == [1, 2]


def test_pretrained_tokenizer_and_model_from_a_folder(tokenizer, tmp_path):
    # A saved folder stands in for the hub's t5-small, which needs internet.
    tokenizer.save_pretrained(tmp_path / "base")
    build_t5(len(tokenizer), d_model=32, d_ff=64, num_heads=2, d_kv=16).save_pretrained(
        tmp_path / "base"
    )
    extended = pretrained_tokenizer(str(tmp_path / "base"), ["items <c77><c3>"], tmp_path / "tok")
    assert len(extended) == len(tokenizer) + 1
    assert extended.tokenize("<c77>") == ["<c77>"]
    t5 = build_t5(len(extended), pretrained=str(tmp_path / "base"))
    assert t5.get_input_embeddings().num_embeddings == len(extended)
    assert t5.config.d_model == 32


# --- model -----------------------------------------------------------------------------------


def test_collate_and_finite_loss(tokenizer):
    batch = collate(
        [
            ("user_1 has interacted with items 1001 , 1008 .", "1015"),
            ("user_2 items <c3><c2>", "<c3><c17><c5>"),
        ],
        tokenizer,
        64,
        8,
        False,
    )
    assert "whole_word_ids" not in batch
    assert batch["labels"][0].tolist() == tokenizer("1015").input_ids + [IGNORE_INDEX]
    assert batch["attention_mask"][1].sum() < batch["attention_mask"][0].sum()
    loss = tiny_p5(tokenizer)(**batch)
    assert loss.ndim == 0 and math.isfinite(loss.item())
    # Truncation keeps </s> at the end.
    short = collate([(prompts(1)[0], "1001")], tokenizer, 5, 8, True)
    assert short["input_ids"].shape == (1, 5) and short["input_ids"][0, -1] == 1
    assert short["whole_word_ids"][0, -1] == 0


def test_whole_word_embedding_changes_the_encoder(tokenizer):
    plain, words = tiny_p5(tokenizer), tiny_p5(tokenizer, whole_word=True)
    plain.eval(), words.eval()
    batch = collate([(prompts(1)[0], "1001")], tokenizer, 64, 8, True)
    ids, mask, wwids = batch["input_ids"], batch["attention_mask"], batch["whole_word_ids"]

    def encode(model, *args):
        return model.t5.encoder(**model.encoder_inputs(*args)).last_hidden_state

    # Zero at the start: the same T5 reads the same vectors.
    torch.testing.assert_close(encode(words, ids, mask, wwids), encode(plain, ids, mask))
    torch.nn.init.normal_(words.whole_word_embedding.weight)
    assert not torch.allclose(encode(words, ids, mask, wwids), encode(plain, ids, mask))
    with pytest.raises(ValueError, match="whole_word_ids"):
        words(ids, mask, batch["labels"])


def test_state_dict_keys_are_stable(tokenizer):
    plain, words = tiny_p5(tokenizer, seed=1), tiny_p5(tokenizer, whole_word=True, seed=2)
    keys = list(plain.state_dict())
    assert keys == list(tiny_p5(tokenizer, seed=3).state_dict())
    assert all(key.startswith("t5.") for key in keys)
    assert list(words.state_dict()) == keys + ["whole_word_embedding.weight"]
    copy = tiny_p5(tokenizer, whole_word=True, seed=4)
    copy.load_state_dict(words.state_dict())
    for key, value in copy.state_dict().items():
        torch.testing.assert_close(value, words.state_dict()[key])


# --- decoding --------------------------------------------------------------------------------


def test_trie(tokenizer):
    trie = Trie.from_items(ITEMS, tokenizer)
    start, eos = 0, tokenizer.eos_token_id
    assert trie.depth == 4 and len(trie) == 30
    first = set(trie.allowed([start]))
    assert first == {tokenizer(item).input_ids[0] for item in ITEMS}
    ids = tokenizer("10015").input_ids
    assert set(trie.allowed([start] + ids[:2])) == {eos, ids[2]}
    assert trie.allowed([start] + ids) == [0]
    assert trie.item([start] + ids + [0]) == 26
    assert trie.item([start] + ids[:2] + [0]) == -1
    with pytest.raises(ValueError, match="same tokens"):
        Trie.from_items(["1001", "1001"], tokenizer)
    with pytest.raises(ValueError, match="<unk>"):
        Trie.from_items(["1001", "#"], tokenizer)


@pytest.mark.parametrize("whole_word", [False, True])
def test_untrained_model_returns_only_valid_distinct_items(tokenizer, whole_word):
    model = tiny_p5(tokenizer, whole_word)
    if whole_word:
        torch.nn.init.normal_(model.whole_word_embedding.weight)
    top = recommend(
        model,
        tokenizer,
        prompts(7),
        Trie.from_items(ITEMS, tokenizer),
        k=5,
        batch_size=3,
        whole_word=whole_word,
    )
    assert top.shape == (7, 5) and top.dtype == np.int64
    assert ((top >= 0) & (top < len(ITEMS))).all()
    assert all(len(set(row)) == 5 for row in top)
    assert model.training  # put back as it was


def test_fewer_items_than_k_pads_with_minus_one(tokenizer):
    top = recommend(
        tiny_p5(tokenizer), tokenizer, prompts(2), Trie.from_items(ITEMS[:3], tokenizer), k=5
    )
    for row in top:
        assert sorted(row[:3]) == [0, 1, 2] and (row[3:] == -1).all()


def test_beams_rank_items_by_sequence_probability(tokenizer):
    model = tiny_p5(tokenizer).eval()
    source = prompts(1)
    # Exhaustive: as many beams as items, so no prefix is ever pruned and all come back.
    top = recommend(model, tokenizer, source, Trie.from_items(ITEMS, tokenizer), k=len(ITEMS))
    batch = collate([(source[0], item) for item in ITEMS], tokenizer, 64, 8, False)
    with torch.no_grad():
        logits = model.t5(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
        ).logits
    labels = batch["labels"].clamp(min=0)
    token_logp = logits.log_softmax(-1).gather(-1, labels[..., None])[..., 0]
    logp = (token_logp * (batch["labels"] != IGNORE_INDEX)).sum(1)
    # Items of 3 and 4 tokens: a length-normalised score would order them differently.
    assert top[0].tolist() == torch.argsort(logp, descending=True).tolist()


@pytest.mark.parametrize("whole_word", [False, True])
def test_encoder_runs_once_per_batch(tokenizer, whole_word):
    model = tiny_p5(tokenizer, whole_word)
    calls = []
    model.t5.encoder.register_forward_hook(lambda *_: calls.append(1))
    recommend(
        model, tokenizer, prompts(7), Trie.from_items(ITEMS, tokenizer), k=4, beams=6, batch_size=3
    )
    assert len(calls) == 3


def test_whole_word_flag_must_match_the_model(tokenizer):
    with pytest.raises(ValueError, match="whole_word"):
        recommend(
            tiny_p5(tokenizer),
            tokenizer,
            prompts(1),
            Trie.from_items(ITEMS, tokenizer),
            k=2,
            whole_word=True,
        )


def test_zero_whole_word_embedding_decodes_like_plain_input(tokenizer):
    trie = Trie.from_items(ITEMS, tokenizer)
    plain = recommend(tiny_p5(tokenizer), tokenizer, prompts(4), trie, k=5)
    words = recommend(tiny_p5(tokenizer, whole_word=True), tokenizer, prompts(4), trie, k=5)
    np.testing.assert_array_equal(words, plain)


@pytest.mark.parametrize("whole_word", [False, True])
def test_tiny_model_overfits_five_prompts(tokenizer, whole_word):
    sources = prompts(5)
    targets = [ITEMS[i] for i in (4, 27, 11, 29, 17)]  # numbers and codes of two depths
    model = tiny_p5(tokenizer, whole_word, dropout=0.0)
    batch = collate(list(zip(sources, targets)), tokenizer, 64, 8, whole_word)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(150):
        loss = model(**batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    top = recommend(model, tokenizer, sources, Trie.from_items(ITEMS, tokenizer), k=3)
    assert top[:, 0].tolist() == [ITEMS.index(target) for target in targets]
