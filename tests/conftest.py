from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmrec.data import steps

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"


def write_interactions(path: Path, rows: list[tuple], behaviour: str = "rating") -> Path:
    """rows: (user_id, item_id, timestamp[, rating[, behaviour]]) -> canonical interactions, with
    ``source_row`` the row's position in ``rows`` (the order of a source file)."""
    cols = list(zip(*rows))
    n = len(rows)
    table = pa.table(
        {
            "user_id": pa.array(cols[0], pa.int32()),
            "item_id": pa.array(cols[1], pa.int32()),
            "timestamp": pa.array(cols[2], pa.int64()),
            "behaviour": pa.array(cols[4] if len(cols) > 4 else [behaviour] * n, pa.string()),
            "rating": pa.array(cols[3] if len(cols) > 3 else [None] * n, pa.float32()),
            "source_row": pa.array(range(n), pa.int64()),
        }
    )
    pq.write_table(table, path)
    return path


def write_entities(path: Path, key: str, n: int) -> Path:
    pq.write_table(
        pa.table(
            {
                key: pa.array(range(n), pa.int32()),
                "original_id": pa.array([f"{key[0]}{i}" for i in range(n)]),
            }
        ),
        path,
    )
    return path


@pytest.fixture
def canonical(tmp_path):
    """A canonical dataset factory: canonical(rows, n_users, n_items) -> dict of paths."""

    def make(rows, n_users, n_items):
        return {
            "interactions": write_interactions(tmp_path / "interactions.parquet", rows),
            "items": write_entities(tmp_path / "items.parquet", "item_id", n_items),
            "users": write_entities(tmp_path / "users.parquet", "user_id", n_users),
        }

    return make


def fetch_and_parse(tmp_path: Path, dataset: str, folder: Path) -> dict[str, Path]:
    """Run the fetch and parse rules' functions on the files in ``folder`` (source local), as
    the workflow does; return the canonical tables' paths (``item_table``: the items)."""
    manifest = tmp_path / "fetched" / "manifest.json"
    manifest.parent.mkdir()
    options = {"source": "local", "path": str(folder)}
    steps.fetch_dataset({}, {"manifest": manifest}, dataset=dataset, options=options)
    names = ("interactions", "item_table", "users", "impressions", "reviews")
    out = {name: tmp_path / "canonical" / f"{name}.parquet" for name in names}
    (tmp_path / "canonical").mkdir()
    steps.parse_dataset({"manifest": manifest}, out, dataset=dataset, options={})
    return out


# --- a tiny chat LLM for the LLM tests (no download, a fraction of a second) ---------------------

TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def make_tiny_llm(folder: Path, chat_template: bool = True, seed: int = 0) -> Path:
    """A random 2-layer Llama (hidden size 32) with a byte-level BPE tokenizer of 300 tokens and
    SmolLM2's chat format, saved in Hugging Face layout in ``folder``. Deterministic in
    ``seed``; ``chat_template=False`` leaves the template out (the error path)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = [
        "liked disliked watched viewed bought added to cart Title Year Genres Comedy Drama Action "
        "Toy Story 1995 What is the answer A B C D E F G H I J K L M N O P Q R S T "
        "0 1 2 3 4 5 6 7 8 9 + - = ?"
    ]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
    )
    if chat_template:
        fast.chat_template = TINY_CHAT_TEMPLATE
    fast.save_pretrained(folder)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory) -> Path:
    """A tiny random chat LLM's folder (:func:`make_tiny_llm`); read-only, shared by tests."""
    return make_tiny_llm(tmp_path_factory.mktemp("tiny_llm"))
