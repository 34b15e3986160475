"""The LLM side of the multi-behaviour study on a tiny random chat LLM: soft tokens, the
collates, the resumable LoRA loop, adapters bound to their base, letter scoring and greedy
decoding, and each rule step end to end on a small planted shop."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from llmrec.data.multi_behaviour import build_user_text
from llmrec.llm import lm as lm_module
from llmrec.llm.lm import (
    add_lora,
    load_adapter,
    load_causal_lm,
    placeholder_token,
    require_chat_template,
    save_adapter,
)
from llmrec.llm.prompts import encode_chat
from llmrec.llm.soft import SoftPromptLM
from llmrec.llm.train import Example, fit_lm, instruction_collate, text_collate
from llmrec.studies import mbr_llm, mbr_llm_tasks

from .conftest import make_tiny_llm
from .test_mbr_text import build_shop

LORA = {"rank": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
SETTINGS = {
    "model": None,
    "dtype": "float32",
    "lora": LORA,
    "number_preconditioning": True,
    "arithmetic": {"examples": 8},
    "adapt": {
        "examples": 12,
        "epochs": 1,
        "batch_size": 4,
        "lr": 3e-3,
        "max_len": 32,
        "checkpoint_every": 2,
        "seed": 0,
    },
    "embed": {"batch_size": 8, "max_len": 32},
    "finetune": {
        "chat_examples": 4,
        "describe_examples": 4,
        "epochs": 1,
        "batch_size": 4,
        "lr": 3e-3,
        "max_len": 384,
        "projector_hidden": 8,
        "title_words": 3,
        "checkpoint_every": 1,
        "seed": 0,
    },
    "chat": {"history": 4, "max_new_tokens": 4, "batch_size": 4},
    "describe": {"max_new_tokens": 4, "batch_size": 4},
}


@pytest.fixture(autouse=True)
def one_thread():
    """One thread, as the rules run: two threads on shared cores spin (70x slower here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def base(tiny_llm):
    return load_causal_lm(tiny_llm)


def batch_of(tokenizer, texts):
    return text_collate(
        [tokenizer.encode(t, add_special_tokens=False) for t in texts],
        pad_id=tokenizer.pad_token_id,
        max_len=64,
    )


def test_without_soft_vectors_it_is_exactly_the_plain_lm(base):
    lm, tokenizer = base
    batch = batch_of(tokenizer, ["liked Toy Story 1995", "What is 1 + 2 ?"])
    soft = SoftPromptLM(lm, 4, 8, placeholder_token(tokenizer)[1])
    with torch.no_grad():
        plain = lm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        wrapped = soft(batch["input_ids"], batch["attention_mask"]).logits
    assert torch.equal(plain, wrapped)


def test_soft_vectors_land_at_the_placeholders_in_order_and_train_the_projector(base):
    lm, tokenizer = base
    token, pid = placeholder_token(tokenizer)
    assert pid not in {tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id}
    model = SoftPromptLM(lm, 3, 8, pid)
    ids = torch.tensor([[5, pid, 6, pid], [pid, 7, 8, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    soft = torch.randn(2, 2, 3)
    soft_mask = torch.tensor([[True, True], [True, False]])
    embeds = model.embed(ids, mask, soft, soft_mask)
    projected = model.projector(soft)
    assert torch.allclose(embeds[0, 1], projected[0, 0]) and torch.allclose(
        embeds[0, 3], projected[0, 1]
    )
    assert torch.allclose(embeds[1, 0], projected[1, 0])
    plain = lm.get_input_embeddings()(ids)
    assert torch.equal(embeds[0, 0], plain[0, 0]) and torch.equal(embeds[1, 3], plain[1, 3])
    labels = ids.masked_fill(mask == 0, -100)
    model(ids, mask, soft, soft_mask, labels=labels).loss.backward()
    assert model.projector[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="placeholders"):
        model.embed(ids, mask, soft[:, :1], soft_mask[:, :1])


def test_instruction_collate_masks_the_prompt_and_cuts_its_left_side():
    examples = [Example([1, 2, 3], [4, 5]), Example([6, 9, 7, 8, 9], [10], np.ones((2, 3)))]
    batch = instruction_collate(examples, pad_id=0, max_len=4, placeholder_id=9)
    assert batch["input_ids"].tolist() == [[2, 3, 4, 5], [7, 8, 9, 10]]
    assert batch["labels"].tolist() == [[-100, -100, 4, 5], [-100, -100, -100, 10]]
    assert batch["soft_mask"].tolist() == [[True]]  # the placeholder cut away lost its vector
    batch = instruction_collate([Example([1], [2]), Example([3, 4, 5], [6])], pad_id=0, max_len=9)
    assert batch["labels"].tolist() == [[-100, 2, -100, -100], [-100, -100, -100, 6]]
    assert batch["attention_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]


def lora_task(tiny_llm, seed=0):
    lm, tokenizer = load_causal_lm(tiny_llm)
    torch.manual_seed(seed)
    model = add_lora(lm, **LORA)
    texts = [
        tokenizer.encode(f"liked Toy Story {i % 3}", add_special_tokens=False) for i in range(16)
    ]

    def collate(batch):
        return text_collate(batch, pad_id=tokenizer.pad_token_id, max_len=16)

    return model, (lambda epoch: texts), collate


def adapter_weights(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_fit_lm_lowers_the_loss_and_trains_only_the_adapter(tiny_llm):
    model, examples, collate = lora_task(tiny_llm)
    frozen = model.get_base_model().model.embed_tokens.weight.detach().clone()
    history = fit_lm(model, examples, collate, epochs=20, batch_size=8, lr=5e-2, progress=False)
    # A random tiny LM moves slowly (its logits are near uniform): 5.6 -> 5.3 nats here.
    assert history[-1]["loss"] < history[0]["loss"] - 0.2
    assert history[0]["tokens_per_s"] > 0 and history[0]["examples_per_s"] > 0
    assert torch.equal(model.get_base_model().model.embed_tokens.weight, frozen)


def test_a_killed_run_resumes_to_the_same_weights_and_a_foreign_checkpoint_is_ignored(
    tiny_llm, tmp_path
):
    options = dict(epochs=2, batch_size=4, lr=1e-2, progress=False, checkpoint_every=3)
    model, examples, collate = lora_task(tiny_llm)
    fit_lm(model, examples, collate, **options)
    uninterrupted = adapter_weights(model)

    class Killed(Exception):
        pass

    def kill(step):
        if step == 5:
            raise Killed

    ckpt = tmp_path / "run.ckpt"
    model, examples, collate = lora_task(tiny_llm)
    with pytest.raises(Killed):
        fit_lm(
            model, examples, collate, checkpoint=ckpt, fingerprint="a", after_step=kill, **options
        )
    assert ckpt.exists()
    state = torch.load(ckpt, weights_only=True)
    assert all("lora" in name for name in state["model"])  # the frozen base is not saved
    model, examples, collate = lora_task(tiny_llm)
    history = fit_lm(model, examples, collate, checkpoint=ckpt, fingerprint="a", **options)
    assert [r["epoch"] for r in history] == [1, 2] and not ckpt.exists()
    assert all(torch.equal(uninterrupted[n], p) for n, p in adapter_weights(model).items())

    model, examples, collate = lora_task(tiny_llm)
    with pytest.raises(Killed):
        fit_lm(
            model, examples, collate, checkpoint=ckpt, fingerprint="a", after_step=kill, **options
        )
    model, examples, collate = lora_task(tiny_llm, seed=1)  # other settings, other start
    history = fit_lm(model, examples, collate, checkpoint=ckpt, fingerprint="b", **options)
    assert [r["epoch"] for r in history] == [1, 2]  # from the start, not from step 5
    assert not all(torch.equal(uninterrupted[n], p) for n, p in adapter_weights(model).items())


def test_an_adapter_from_another_base_is_refused(tiny_llm, tmp_path):
    lm, _ = load_causal_lm(tiny_llm)
    save_adapter(add_lora(lm, **LORA), tmp_path / "adapter")
    same, _ = load_causal_lm(tiny_llm)
    assert load_adapter(same, tmp_path / "adapter", tiny_llm) is not None
    other, _ = load_causal_lm(make_tiny_llm(tmp_path / "other", seed=1))
    with pytest.raises(ValueError, match="trained on base model"):
        load_adapter(other, tmp_path / "adapter", tmp_path / "other")


def test_a_tokenizer_without_chat_template_is_one_sentence(tmp_path):
    _, tokenizer = load_causal_lm(make_tiny_llm(tmp_path / "plain", chat_template=False))
    with pytest.raises(ValueError, match="no chat template"):
        require_chat_template(tokenizer, "plain")


def test_no_spare_special_token_is_an_error(base, monkeypatch):
    _, tokenizer = base
    monkeypatch.setattr(
        type(tokenizer), "all_special_ids", property(lambda self: [self.eos_token_id])
    )
    monkeypatch.setattr(
        type(tokenizer), "all_special_tokens", property(lambda self: [self.eos_token])
    )
    with pytest.raises(ValueError, match="no special token"):
        placeholder_token(tokenizer)
    assert lm_module  # the module under test


def prompts_of(tokenizer, texts):
    return [encode_chat(tokenizer, t) for t in texts]


def test_letter_logits_read_each_prompts_next_token_logits(base):
    lm, tokenizer = base
    model = SoftPromptLM(lm, 2, 4, placeholder_token(tokenizer)[1])
    rows = prompts_of(tokenizer, ["What is 1 + 2 ?", "liked Toy Story", "A B C"])
    labels = [10, 3, 50]
    scores = model.letter_logits(rows, labels, pad_id=tokenizer.pad_token_id, batch_size=2)
    assert scores.shape == (3, 3)
    for i, row in enumerate(rows):
        with torch.no_grad():
            alone = lm(input_ids=torch.tensor([row])).logits[0, -1, labels]
        assert torch.allclose(scores[i], alone, atol=1e-5)


def test_greedy_generate_equals_hugging_face_generate(base):
    lm, tokenizer = base
    model = SoftPromptLM(lm, 2, 4, placeholder_token(tokenizer)[1])
    rows = prompts_of(tokenizer, ["What is 1 + 2 ?", "liked Toy Story 1995 Comedy"])
    ours = model.generate(
        rows,
        pad_id=tokenizer.pad_token_id,
        eos_ids=[tokenizer.eos_token_id],
        max_new_tokens=6,
        batch_size=2,
    )
    for row, answer in zip(rows, ours):
        with torch.no_grad():
            theirs = lm.generate(
                torch.tensor([row]),
                max_new_tokens=6,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )[0, len(row) :].tolist()
        stop = (
            theirs.index(tokenizer.eos_token_id)
            if tokenizer.eos_token_id in theirs
            else len(theirs)
        )
        assert answer == theirs[:stop]


def test_answer_gives_the_letter_logits_and_the_greedy_answers_of_one_read(base):
    lm, tokenizer = base
    model = SoftPromptLM(lm, 2, 4, placeholder_token(tokenizer)[1])
    rows = prompts_of(tokenizer, ["What is 1 + 2 ?", "liked Toy Story 1995 Comedy", "A B"])
    labels = [10, 3, 50]
    kwargs = {"pad_id": tokenizer.pad_token_id, "batch_size": 2}
    eos = {"eos_ids": [tokenizer.eos_token_id], "max_new_tokens": 5}
    scores, answers = model.answer(rows, labels, **kwargs, **eos)
    assert torch.allclose(scores, model.letter_logits(rows, labels, **kwargs), atol=1e-6)
    assert answers == model.generate(rows, **kwargs, **eos)
    assert scores.shape == (3, 3) and len(answers) == 3


# --- the rule steps end to end ------------------------------------------------------------------


@pytest.fixture(scope="module")
def study(tiny_llm, tmp_path_factory):
    root = tmp_path_factory.mktemp("mbr_llm")
    shop = build_shop(root, 60)
    shop["user_text"] = root / "user_text.parquet"
    build_user_text(shop["sequences"], shop["item_text"], shop["user_text"], stage="valid")
    rng = np.random.default_rng(0)
    shop["vectors"] = root / "vectors.npz"
    np.savez(
        shop["vectors"],
        items=rng.normal(size=(60, 6)).astype(np.float32),
        users_valid=rng.normal(size=(12, 6)).astype(np.float32),
        users_test=rng.normal(size=(12, 6)).astype(np.float32),
        items_test=rng.normal(size=(60, 6)).astype(np.float32),
    )
    shop["llm"] = tiny_llm
    shop["describe_items"] = shop["describe"]
    shop["adapter"] = root / "adapter"
    mbr_llm.mbr_llm_adapt(
        shop,
        {"adapter": shop["adapter"], "summary": root / "adapt.json"},
        settings=SETTINGS,
        llm=str(shop["llm"]),
        device="cpu",
        progress=False,
    )
    shop["model"] = root / "model"
    inputs = {k: shop[k] for k in ("llm", "adapter", "sequences", "item_text", "vectors")}
    inputs["describe_items"] = shop["describe"]
    mbr_llm_tasks.mbr_llm_finetune(
        inputs,
        {"model": shop["model"], "summary": root / "ft.json"},
        variant="unified",
        settings=SETTINGS,
        llm=str(shop["llm"]),
        device="cpu",
        progress=False,
    )
    return shop


def test_adapt_writes_an_adapter_and_is_deterministic(study, tmp_path):
    assert (study["adapter"] / "base_model.json").exists()
    assert not list(study["adapter"].parent.glob("adapter.*"))  # no checkpoint left behind
    again = tmp_path / "adapter"
    mbr_llm.mbr_llm_adapt(
        study,
        {"adapter": again, "summary": tmp_path / "s.json"},
        settings=SETTINGS,
        llm=str(study["llm"]),
        device="cpu",
        progress=False,
    )
    from safetensors.torch import load_file

    first = load_file(study["adapter"] / "adapter_model.safetensors")
    second = load_file(again / "adapter_model.safetensors")
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_embed_gives_one_vector_per_item(study, tmp_path):
    out = tmp_path / "emb.npy"
    mbr_llm.mbr_llm_embed(
        study,
        {"embeddings": out},
        settings=SETTINGS,
        llm=str(study["llm"]),
        device="cpu",
        progress=False,
    )
    emb = np.load(out)
    assert emb.shape == (60, 32) and emb.dtype == np.float32 and np.isfinite(emb).all()
    assert not np.allclose(emb[0], emb[1])


def test_finetune_writes_adapter_and_projector(study):
    state = torch.load(study["model"] / "projector.pt", weights_only=True)
    assert state["0.weight"].shape == (8, 6) and state["2.weight"].shape == (32, 8)


@pytest.mark.parametrize("row", ["zero_shot", "unified"])
def test_chat_scores_every_candidate_and_answers(study, tmp_path, row):
    inputs = {k: study[k] for k in ("candidates", "chat_users", "sequences", "item_text")}
    if row == "unified":
        inputs |= {"model": study["model"], "vectors": study["vectors"]}
    out = tmp_path / "per_user.parquet"
    mbr_llm_tasks.mbr_chat(
        inputs,
        {"per_user": out},
        row=row,
        settings=SETTINGS,
        llm=str(study["llm"]),
        device="cpu",
        progress=False,
    )
    table = pq.read_table(out)
    candidates = pq.read_table(study["candidates"])  # every test user is asked here
    assert table.column("user_id").to_pylist() == candidates.column("user_id").to_pylist()
    scores = np.array(table.column("letter_scores").to_pylist())
    assert scores.shape == (candidates.num_rows, 20) and np.isfinite(scores).all()
    assert all(isinstance(a, str) for a in table.column("answer").to_pylist())
    from llmrec.studies.mbr_split import read_run_keys

    assert read_run_keys(out)["model"] == row


@pytest.mark.parametrize("row", ["zero_shot_title", "unified"])
def test_describe_answers_every_held_out_item(study, tmp_path, row):
    inputs = {
        "llm": study["llm"],
        "describe_items": study["describe"],
        "item_text": study["item_text"],
    }
    if row == "unified":
        inputs |= {"model": study["model"], "vectors": study["vectors"]}
    out = tmp_path / "descriptions.parquet"
    mbr_llm_tasks.mbr_describe(
        inputs,
        {"descriptions": out},
        row=row,
        settings=SETTINGS,
        dataset="shop",
        llm=str(study["llm"]),
        device="cpu",
        progress=False,
    )
    table = pq.read_table(out)
    held = pq.read_table(study["describe"]).column("item_id").to_pylist()
    assert table.column("item_id").to_pylist() == held
    assert all(isinstance(d, str) for d in table.column("description").to_pylist())


def test_finetune_text_variant_has_no_projector_and_unified_needs_vectors(study, tmp_path):
    inputs = {k: study[k] for k in ("llm", "adapter", "sequences", "item_text")}
    inputs["describe_items"] = study["describe"]
    out = {"model": tmp_path / "text", "summary": tmp_path / "t.json"}
    mbr_llm_tasks.mbr_llm_finetune(
        inputs,
        out,
        variant="text",
        settings=SETTINGS,
        llm=str(study["llm"]),
        device="cpu",
        progress=False,
    )
    assert (tmp_path / "text" / "adapter_model.safetensors").exists()
    assert not (tmp_path / "text" / "projector.pt").exists()
    with pytest.raises(ValueError, match="vectors"):
        mbr_llm_tasks.mbr_llm_finetune(
            inputs,
            out,
            variant="unified",
            settings=SETTINGS,
            llm=str(study["llm"]),
            device="cpu",
            progress=False,
        )


def test_adapt_never_trains_on_the_held_out_items_texts(study, tmp_path, monkeypatch):
    seen = []

    def capture(model, examples, collate, **kwargs):
        # The domain texts (token lists); the arithmetic problems, if any, are Examples.
        seen.extend(e for e in examples(0) if isinstance(e, list))
        return []

    monkeypatch.setattr(mbr_llm, "fit_lm", capture)
    mbr_llm.mbr_llm_adapt(
        study,
        {"adapter": tmp_path / "a", "summary": tmp_path / "s.json"},
        settings=SETTINGS | {"adapt": SETTINGS["adapt"] | {"examples": 10_000}},
        llm=str(study["llm"]),
        device="cpu",
        progress=False,
    )
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(study["llm"])
    trained = {tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in seen}
    texts = pq.read_table(study["item_text"]).column("text").to_pylist()
    held = pq.read_table(study["describe"]).column("item_id").to_pylist()
    kept = [texts[i].strip() for i in range(len(texts)) if i not in held]
    assert not {texts[i].strip() for i in held} & trained
    assert set(kept) <= trained  # the other items' texts are all there (the cap is above them)
