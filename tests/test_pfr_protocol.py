"""PFR as P4R defines it: the user-sampling filter, training-period reviews in the item prompt
(never a held-out interaction's), and RLMRec's alignment (summary only, every user)."""

from __future__ import annotations

import pyarrow.parquet as pq

from llmrec.data import encode


def _out(tmp_path, name):
    d = tmp_path / name
    d.mkdir()
    return {t: d / f"{t}.parquet" for t in ("interactions", "items", "users")}


# 20 users with 3 events each over 6 items: a 2-core that keeps everyone.
ROWS = [(u, (u + j) % 6, 10 * u + j) for u in range(20) for j in range(3)]


def _sample(tmp_path, canonical, name, n, seed, k_core=2):
    paths = canonical(ROWS, 20, 6)
    out = _out(tmp_path, name)
    stats = encode.filter_interactions(
        encode.connect(), paths, out, dataset="t", k_core=k_core, sample_users=n, seed=seed
    )
    kept = set(pq.read_table(out["users"]).column("original_id").to_pylist())
    return stats, kept


def test_sample_users_keeps_n_users_with_all_their_events(tmp_path, canonical):
    stats, kept = _sample(tmp_path, canonical, "a", 7, seed=3)
    assert stats["users"] == 7 and len(kept) == 7
    assert stats["interactions"] == 7 * 3  # every event of a sampled user stays


def test_sample_users_is_seeded(tmp_path, canonical):
    _, first = _sample(tmp_path, canonical, "a", 7, seed=3)
    _, again = _sample(tmp_path, canonical, "b", 7, seed=3)
    _, other = _sample(tmp_path, canonical, "c", 7, seed=4)
    assert first == again and first != other


def test_sample_users_above_the_count_keeps_everyone(tmp_path, canonical):
    stats, _ = _sample(tmp_path, canonical, "a", 50, seed=0)
    assert (stats["users"], stats["interactions"]) == (20, 60)


def test_sample_users_comes_after_the_k_core(tmp_path, canonical):
    """Users the k-core drops are never drawn: all 5 sampled users survive a 3-core."""
    paths = canonical(ROWS + [(20, 0, 999)], 21, 6)  # user 20 has one event: out of the 3-core
    out = _out(tmp_path, "a")
    stats = encode.filter_interactions(
        encode.connect(), paths, out, dataset="t", k_core=3, sample_users=5, seed=1
    )
    assert stats["users"] == 5 and stats["interactions"] == 15
    assert "u20" not in pq.read_table(out["users"]).column("original_id").to_pylist()


# --- RLMRec's alignment --------------------------------------------------------------------------


def _pfr(max_nodes=None, n_users=5, n_items=4):
    import torch

    from llmrec.models.pfr import PFR

    torch.manual_seed(0)
    return PFR(
        n_users,
        n_items,
        torch.randn(n_users, 6),
        torch.randn(n_items, 6),
        embedding_dim=4,
        num_layers=1,
        hidden_dim=8,
        max_nodes=max_nodes,
    )


def test_a_batch_user_is_contrasted_with_every_users_profile():
    """One user in the batch: in-batch negatives would leave no negative (a loss of exactly 0);
    RLMRec contrasts it with every user's profile."""
    import torch

    model = _pfr()
    user_final, item_final = torch.randn(5, 4), torch.randn(4, 4)
    users, items = torch.tensor([2, 2]), torch.tensor([1, 1])  # one user, one item
    loss = model.alignment_loss(users, items, user_final, item_final)
    assert loss.item() > 0.1
    projected = model.project(model.user_semantic)
    logits = torch.nn.functional.normalize(user_final[[2]], dim=-1) @ (
        torch.nn.functional.normalize(projected, dim=-1).T
    )
    expected = torch.nn.functional.cross_entropy(logits / model.temperature, torch.tensor([2]))
    torch.testing.assert_close(loss, expected)  # the lone item adds exactly 0


def test_max_nodes_none_aligns_every_distinct_node_of_the_batch():
    import torch

    nodes = torch.arange(50)
    assert torch.equal(_pfr(max_nodes=None)._some(nodes), nodes)
    assert torch.equal(_pfr(max_nodes=0)._some(nodes), nodes)
    assert len(_pfr(max_nodes=8)._some(nodes)) == 8


def test_the_embedded_profile_text_is_the_summary_alone():
    import numpy as np

    from llmrec.text.steps import _profile_table

    answers = [
        '{"summary": "Fans of animation.", "reasoning": "It is a cartoon."}',
        "no json here",
        "",
    ]
    table = _profile_table(np.arange(3), "item_id", ["a", "b", "fallback"], answers)
    assert table.column("profile_text").to_pylist() == [
        "Fans of animation.",
        "no json here",
        "fallback",
    ]
    assert table.column("reasoning").to_pylist()[0] == "It is a cartoon."


# --- the extrinsic part of the item prompt -------------------------------------------------------


def _text_inputs(tmp_path):
    """3 users x 3 items. Every event has a review naming its split; user 0 rated item 0 twice,
    once in training and once in the test split (a pair with a held-out twin)."""
    import pyarrow as pa

    events = [  # user, item, timestamp, rating, split
        (0, 0, 1, 5.0, "train"),
        (0, 0, 9, 1.0, "test"),
        (0, 1, 2, 4.0, "train"),
        (1, 1, 3, 2.0, "valid"),
        (1, 0, 4, 3.0, "train"),
        (2, 1, 5, 5.0, "train"),
        (2, 2, 6, 4.0, "test"),
    ]
    u, i, t, r, s = (list(c) for c in zip(*events))
    split = tmp_path / "split.parquet"
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array(u, pa.int32()),
                "item_id": pa.array(i, pa.int32()),
                "timestamp": pa.array(t, pa.int64()),
                "behaviour": ["review"] * len(u),
                "rating": pa.array(r, pa.float32()),
                "split": s,
            }
        ),
        split,
    )
    reviews = tmp_path / "reviews.parquet"
    marker = {"train": "TRAINREVIEW", "valid": "HELDOUT", "test": "HELDOUT"}
    pq.write_table(
        pa.table(
            {
                "user_original_id": [f"u{x}" for x in u] + ["u9"],  # u9: filtered out
                "item_original_id": [f"i{x}" for x in i] + ["i1"],
                "timestamp": pa.array(t + [7], pa.int64()),
                "text": [f"{marker[x]} by u{a} on i{b}" for x, a, b in zip(s, u, i)]
                + ["OUTSIDER review"],
            }
        ),
        reviews,
    )
    text = tmp_path / "item_text.parquet"
    pq.write_table(
        pa.table(
            {
                "item_id": pa.array(range(3), pa.int32()),
                "original_id": ["i0", "i1", "i2"],
                "title": ["A", "B", "C"],
                "text": ["Title: A", "Title: B", "Title: C"],
            }
        ),
        text,
    )
    users = tmp_path / "users.parquet"
    pq.write_table(
        pa.table({"user_id": pa.array(range(3), pa.int32()), "original_id": ["u0", "u1", "u2"]}),
        users,
    )
    return {"split": str(split), "reviews": str(reviews), "text": str(text), "users": str(users)}


def test_extrinsic_lines_quote_training_reviews_and_ratings_only(tmp_path):
    from llmrec.text.extrinsic import item_extrinsic

    paths = _text_inputs(tmp_path)
    lines = item_extrinsic(paths["split"], paths["reviews"], paths["text"], paths["users"])
    assert lines[0] == 'rated 4.0/5 on average by 2 users; reviews: "TRAINREVIEW by u1 on i0"'
    assert lines[1] == (
        'rated 4.5/5 on average by 2 users; reviews: "TRAINREVIEW by u2 on i1" | '
        '"TRAINREVIEW by u0 on i1"'
    )
    assert lines[2] == "no ratings yet"  # its one event is a test event
    assert not any("HELDOUT" in line or "OUTSIDER" in line for line in lines)
    short = item_extrinsic(
        paths["split"], paths["reviews"], paths["text"], paths["users"], per_item=1, words=1
    )
    assert short[1] == 'rated 4.5/5 on average by 2 users; reviews: "TRAINREVIEW ..."'


def test_no_review_of_a_held_out_interaction_reaches_an_item_prompt(tmp_path, monkeypatch):
    from contextlib import nullcontext

    from llmrec.text import steps

    class Recorder:
        model_id = "recorder"
        prompts: list[str] = []

        def counting(self, total):
            return nullcontext()

        def generate(self, prompts, system=None):
            self.prompts.extend(prompts)
            return ['{"summary": "s", "reasoning": "r"}'] * len(prompts)

    recorder = Recorder()
    monkeypatch.setattr(steps, "_generator", lambda *args: recorder)
    paths = _text_inputs(tmp_path)
    out = tmp_path / "profiles" / "items_random.parquet"
    llm = {"reviews_per_item": 5, "review_words": 50}
    steps.item_profiles(paths, {"table": str(out)}, llm=llm, progress=False)
    assert len(recorder.prompts) == 3
    assert sum(p.count("TRAINREVIEW") for p in recorder.prompts) == 3
    assert not any("HELDOUT" in p or "OUTSIDER" in p for p in recorder.prompts)
    assert pq.read_table(out).column("extrinsic").to_pylist()[2] == "no ratings yet"


# --- the table names the models that wrote and embedded the profiles -----------------------------


def test_the_pfr_table_note_names_the_llm_and_the_encoder(monkeypatch):
    from llmrec.studies import pfr

    specs = []
    monkeypatch.setattr(pfr, "write_study_table", lambda i, o, spec, **kw: specs.append(spec))
    llm = {"model": "Qwen/Qwen2.5-7B-Instruct", "dtype": "bfloat16", "max_new_tokens": 128}
    pfr.pfr_table({}, {}, ks=[10], llm=llm, embedder={"model": "all-MiniLM-L6-v2"})
    assert specs[0].note.startswith(pfr.NOTE)
    assert "Profiles written by Qwen/Qwen2.5-7B-Instruct (bfloat16, greedy, at most 128 new " in (
        specs[0].note
    )
    assert "embedded, like SGE's item texts, by all-MiniLM-L6-v2" in specs[0].note
    default = pfr.profile_models_note(
        {"model": "smollm2", "dtype": "float32", "max_new_tokens": 64}, {"model": "m"}
    )
    assert default.startswith("Profiles written by SmolLM2-135M-Instruct (float32")


def test_the_item_prompt_shows_examples_before_the_item():
    from llmrec.text.prompts import load_template

    text, _ = load_template("item_profile")
    examples, item = text.split("Item: {item_text}")
    assert examples.count('{{"summary": "') == 2  # the format line and a worked example
    assert 'reviews: "' in examples  # the example shows the extrinsic part too
    assert "Users: {extrinsic}" in item
