"""Same config and seed, same bytes: the SGE path of the PFR study and the weights files.

Two default runs once gave SGE different test metrics: the item text embeddings depended on
which embedding job had filled the shared cache first (a text's vector changes in its last bits
with the texts it is batched with), and training amplified those bits.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from llmrec.io import save_weights
from llmrec.studies.pfr import train_pfr
from llmrec.text import steps


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """The functions under test set torch's thread count; the other tests keep theirs."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# --- embeddings ---------------------------------------------------------------------------------

ITEM_TEXTS = [
    f"Title: {title}; Year: {year}; Genres: {genres}"
    for title, year, genres in [
        ("Toy Story", 1995, "Animation, Children's, Comedy"),
        ("GoldenEye", 1995, "Action, Adventure, Thriller"),
        ("Four Rooms", 1995, "Thriller"),
        ("Get Shorty", 1995, "Action, Comedy, Drama"),
        ("Copycat", 1995, "Crime, Drama, Thriller"),
        ("Twelve Monkeys", 1995, "Drama, Sci-Fi"),
        ("Babe", 1995, "Children's, Comedy, Drama"),
        ("Dead Man Walking", 1995, "Drama"),
    ]
]
# An item's profile falls back to its text when the LLM's answer is empty: the two embedding
# jobs of a dataset then share texts, and its cache folder.
PROFILE_TEXTS = [
    ITEM_TEXTS[0],
    "A warm animated comedy about toys that come to life when their owner leaves the room, "
    "with jokes for adults and a story about friendship and jealousy for children.",
    ITEM_TEXTS[2],
    "A spy thriller with chases, gadgets and a villain from the hero's past; for viewers who "
    "like action, exotic places and a fast pace more than a plausible plot.",
    ITEM_TEXTS[4],
    ITEM_TEXTS[5],
]


def _embed(folder, name: str, column: str, texts: list[str], threads: int) -> np.ndarray:
    table = folder / f"{name}.parquet"
    pq.write_table(pa.table({column: texts}), table)
    vectors = folder / "embeddings" / f"{name}.npy"
    steps.embed_texts(
        {"table": str(table)},
        {"vectors": str(vectors)},
        column=column,
        embedder={"model": "all-MiniLM-L6-v2", "batch_size": 64, "device": "cpu"},
        progress=False,
        threads=threads,
    )
    return np.load(vectors)


def test_item_text_vectors_do_not_depend_on_the_job_order(tmp_path):
    """The ``item_text`` vectors are the same bits whether the shared cache was empty or already
    held the item profiles and the same texts embedded with another thread count (an AVX-512
    Xeon gives other last bits with 1 and 2 threads: the cache must not hand those out)."""
    (alone := tmp_path / "alone").mkdir()
    (after := tmp_path / "after_profiles").mkdir()
    first = _embed(alone, "item_text", "text", ITEM_TEXTS, threads=2)
    _embed(after, "item_profiles", "profile_text", PROFILE_TEXTS, threads=1)
    _embed(after, "item_text_one_thread", "text", ITEM_TEXTS, threads=1)
    second = _embed(after, "item_text", "text", ITEM_TEXTS, threads=2)
    assert first.tobytes() == second.tobytes()


# --- the SGE training path ---------------------------------------------------------------------


def _sge_inputs(folder) -> dict[str, str]:
    """A tiny split, its graph (as the data stage writes it) and random item embeddings."""
    rng = np.random.default_rng(0)
    n_users, n_items = 30, 40
    users, items, split = [], [], []
    for u in range(n_users):
        chosen = rng.choice(n_items, 10, replace=False)
        users += [u] * 10
        items += chosen.tolist()
        split += ["train"] * 7 + ["valid", "test", "test"]
    users, items, split = np.array(users), np.array(items), np.array(split)
    pq.write_table(
        pa.table({"user_id": users, "item_id": items, "split": split}), folder / "split.parquet"
    )
    train = split == "train"
    order = np.lexsort((items[train], users[train]))
    u, i = users[train][order], items[train][order]
    deg_u, deg_i = np.bincount(u, minlength=n_users), np.bincount(i, minlength=n_items)
    np.savez(
        folder / "graph.npz",
        n_users=np.int64(n_users),
        n_items=np.int64(n_items),
        user_indptr=np.concatenate([[0], np.cumsum(deg_u)]).astype(np.int64),
        user_items=i.astype(np.int32),
        user_norm=(1.0 / np.sqrt(deg_u[u] * deg_i[i])).astype(np.float32),
    )
    vectors = rng.standard_normal((n_items, 24)).astype(np.float32)
    np.save(folder / "item.npy", vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    return {
        "graph": str(folder / "graph.npz"),
        "split": str(folder / "split.parquet"),
        "item_semantic": str(folder / "item.npy"),
    }


def _train_sge(inputs: dict[str, str], out, threads: int) -> dict[str, str]:
    names = {"per_user": "per_user.parquet", "summary": "summary.json", "weights": "weights.pt"}
    output = {key: str(out / name) for key, name in names.items()}
    train_pfr(
        inputs,
        output,
        dataset="tiny",
        model="sge",
        seed=3,
        backbone={
            "embedding_dim": 8,
            "num_layers": 2,
            "batch_size": 64,
            "lr": 0.01,
            "reg_weight": 1e-4,
            "epochs": 4,
            "eval_every": 2,
            "patience": 2,
            "metric": "recall@5",
        },
        # max_nodes below a batch's distinct users and items: the sampled subsets count too
        alignment={"weight": 0.1, "temperature": 0.2, "hidden_dim": 16, "max_nodes": 8},
        ks=[5],
        device="cpu",
        progress=False,
        threads=threads,
    )
    return output


def _without_timings(path: str) -> dict:
    summary = json.loads(Path(path).read_text())
    summary.pop("train_seconds")
    for row in summary["history"]:
        del row["train_seconds"], row["eval_seconds"]
    return summary


def test_sge_runs_with_the_same_seed_write_the_same_results(tmp_path):
    """Per-user metrics, summary and weights file, bit for bit; also with another thread count
    and after other draws from torch's global generator."""
    inputs = _sge_inputs(tmp_path)
    a = _train_sge(inputs, tmp_path / "a", threads=1)
    torch.rand(1000)
    b = _train_sge(inputs, tmp_path / "b", threads=2)
    pd.testing.assert_frame_equal(pd.read_parquet(a["per_user"]), pd.read_parquet(b["per_user"]))
    assert _without_timings(a["summary"]) == _without_timings(b["summary"])
    with open(a["weights"], "rb") as fa, open(b["weights"], "rb") as fb:
        assert fa.read() == fb.read()
    state = torch.load(a["weights"], weights_only=True)
    assert {"user_embedding.weight", "item_semantic", "project.0.weight"} <= set(state)


# --- weights files -----------------------------------------------------------------------------


def test_save_weights_gives_the_same_bytes_under_any_name(tmp_path):
    state = {"w": torch.arange(6.0).view(2, 3), "b": torch.ones(3, dtype=torch.float64)}
    save_weights(tmp_path / "one.pt", state)
    save_weights(tmp_path / "sub" / "other-name.pt", state)
    one = (tmp_path / "one.pt").read_bytes()
    assert one == (tmp_path / "sub" / "other-name.pt").read_bytes()
    records = zipfile.ZipFile(tmp_path / "one.pt").namelist()
    assert all(name.startswith("archive/") for name in records)  # not the temporary's name
    loaded = torch.load(tmp_path / "one.pt", weights_only=True)
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporaries


def test_save_weights_leaves_nothing_when_saving_fails(tmp_path):
    with pytest.raises(TypeError, match="pickle"):
        save_weights(tmp_path / "w.pt", {"f": (n for n in range(3))})  # generators do not pickle
    assert list(tmp_path.iterdir()) == []
