"""The multi-behaviour study's text tasks (llmrec.studies.mbr_text): the candidate lists and
held-out items, the chat metrics (letter ranking and generation matching), the description
metrics, and the table, figure and examples end to end on small fake rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from llmrec.data import steps
from llmrec.data.artifacts import load_behaviour_sequences
from llmrec.evaluation.candidates import (
    RANDOM,
    candidate_items,
    candidate_scores,
    chat_metrics,
    letters,
    match_answer,
    scores_table,
)
from llmrec.evaluation.text import genre_f1, genres_named, item_genres, rouge
from llmrec.io import write_json
from llmrec.studies import mbr_split, mbr_text

from .conftest import write_interactions

SHOP = {"funnel": ["view", "fav", "cart", "buy"], "target": "buy"}
GENRES = ["Comedy", "Drama", "Thriller", "Children's", "Sci-Fi"]
N_ITEMS = 60


def shop_rows(n_users: int = 12, n_items: int = N_ITEMS, seed: int = 0) -> list[tuple]:
    """Users view three items, cart one and buy it, five times; then, after every held-out
    purchase, each views an item it had never met (met in the log, in no sequence)."""
    rng = np.random.default_rng(seed)
    rows, t = [], 0
    for user in range(n_users):
        for _ in range(5):
            viewed = rng.choice(n_items, 3, replace=False)
            rows += [(user, int(i), t + k, None, "view") for k, i in enumerate(viewed)]
            rows += [(user, int(viewed[0]), t + 10, None, "cart")]
            rows += [(user, int(viewed[0]), t + 20, None, "buy")]
            t += 100
    for user in range(n_users):
        met = {r[1] for r in rows if r[0] == user}
        late = min(set(range(n_items)) - met)
        rows.append((user, late, t + user, None, "view"))
    return rows


def item_text_table(path, n_items: int = N_ITEMS) -> None:
    titles = [f"Movie {chr(65 + i % 26)}{i // 26} Story" for i in range(n_items)]
    texts = [
        f"Title: {t}; Year: 1995; Genres: {GENRES[i % 5]}, {GENRES[(i + 2) % 5]}"
        for i, t in enumerate(titles)
    ]
    pq.write_table(
        pa.table(
            {
                "item_id": pa.array(range(n_items), pa.int32()),
                "original_id": [str(i) for i in range(n_items)],
                "title": titles,
                "text": texts,
            }
        ),
        path,
    )


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return build_shop(tmp_path_factory.mktemp("shop"), N_ITEMS)


def build_shop(root, n_items: int) -> dict:
    """The shop's sequences and item text, and its split (20 candidates, 6 items to describe)."""
    rows = shop_rows(n_items=n_items)
    paths = {
        "interactions": write_interactions(root / "interactions.parquet", rows),
        "sequences": root / "sequences.parquet",
        "item_text": root / "item_text.parquet",
    }
    steps.mbr_sequences(
        {"interactions": paths["interactions"]},
        {"sequences": paths["sequences"], "summary": root / "behaviours.json"},
        dataset="shop",
        behaviours=SHOP,
    )
    item_text_table(paths["item_text"], n_items)
    split = {
        "candidates": root / "candidates.parquet",
        "chat_users": root / "chat_users.parquet",
        "describe": root / "describe.parquet",
    }
    mbr_split.mbr_candidates(paths, {"candidates": split["candidates"]}, seed=3)
    mbr_split.mbr_text_subsets(
        {"candidates": split["candidates"], "item_text": paths["item_text"]},
        {"chat_users": split["chat_users"], "describe_items": split["describe"]},
        users=None,
        describe_items=6,
        seed=3,
    )
    return paths | split | {"root": root, "rows": rows}


def split_again(shop, tmp_path, seed=3, users=None, describe_items=6):
    out = {
        "candidates": tmp_path / "c.parquet",
        "chat_users": tmp_path / "u.parquet",
        "describe_items": tmp_path / "d.parquet",
    }
    mbr_split.mbr_candidates(shop, out, seed=seed)
    mbr_split.mbr_text_subsets(
        {"candidates": out["candidates"], "item_text": shop["item_text"]},
        out,
        users=users,
        describe_items=describe_items,
        seed=seed,
    )
    asked = mbr_split.asked_candidates(out["candidates"], out["chat_users"])
    return asked, pq.read_table(out["describe_items"])


# --- the split ------------------------------------------------------------------------------------


def test_candidates_hold_the_target_once_and_no_item_the_user_met(shop):
    table = pq.read_table(shop["candidates"])
    seqs = load_behaviour_sequences(shop["sequences"])
    items = candidate_items(table)
    assert table.schema.field("user_id").type == pa.int32()
    assert table.schema.field("target_position").type == pa.int8()
    assert items.shape == (int((seqs.test_item >= 0).sum()), 20)
    met = {}
    for user, item, *_ in shop["rows"]:
        met.setdefault(user, set()).add(item)
    positions = table.column("target_position").to_numpy()
    for user, listed, position in zip(table.column("user_id").to_pylist(), items, positions):
        target = seqs.test_item[user]
        assert listed[position] == target and (listed == target).sum() == 1
        assert len(set(listed.tolist())) == 20
        assert not (set(listed.tolist()) - {target}) & met[user]
    # Every user's late view (after its test time, in no sequence) is met and so never listed.
    late = {u: shop["rows"][-len(met) + u][1] for u in met}
    assert all(late[u] not in seqs.items[u] for u in late)
    assert len(set(positions.tolist())) > 1  # the target is not always in the same place


def test_same_seed_same_lists_and_a_users_list_does_not_depend_on_the_others(shop, tmp_path):
    first = pq.read_table(shop["candidates"])
    again, describe = split_again(shop, tmp_path, seed=3)
    assert again.equals(first)
    assert describe.equals(pq.read_table(shop["describe"]))
    fewer, _ = split_again(shop, tmp_path, seed=3, users=4)
    assert fewer.num_rows == 4 and fewer.column("user_id").to_pylist() == sorted(
        fewer.column("user_id").to_pylist()
    )
    by_user = {r["user_id"]: r for r in first.to_pylist()}
    assert all(by_user[r["user_id"]] == r for r in fewer.to_pylist())
    other, _ = split_again(shop, tmp_path, seed=4)
    assert not other.equals(first)


def test_describe_items_have_a_text_and_are_drawn_with_the_seed(shop, tmp_path):
    described = pq.read_table(shop["describe"]).column("item_id")
    assert described.type == pa.int32() and len(described) == 6
    assert described.to_pylist() == sorted(set(described.to_pylist()))
    with pytest.raises(ValueError, match="leaves none"):
        split_again(shop, tmp_path, seed=3, describe_items=N_ITEMS)


def test_too_many_candidates_for_the_catalogue_is_one_sentence(tmp_path):
    # 12 items, of which every user meets several: 19 never-met items cannot be found.
    with pytest.raises(ValueError, match=r"never-met items for 19 negatives; lower candidates"):
        build_shop(tmp_path, 12)
    assert not (tmp_path / "candidates.parquet").exists()


# --- the chat metrics -----------------------------------------------------------------------------


def test_candidate_scores_reads_each_candidates_score_in_presentation_order():
    candidates = pa.table(
        {
            "user_id": pa.array([2, 0, 5], pa.int32()),
            "items": pa.array([[3, 1, 4], [0, 9, 2], [7, 7, 1]], pa.list_(pa.int32())),
            "target_position": pa.array([0, 1, 2], pa.int8()),
        }
    )

    def scores_fn(users: torch.Tensor) -> torch.Tensor:
        return users[:, None].float() * 100 + torch.arange(10).float()

    out = candidate_scores(scores_fn, candidates, batch_size=2)
    assert out.column("user_id").to_pylist() == [2, 0, 5]
    assert out.schema.field("letter_scores").type == pa.list_(pa.float32())
    assert out.column("letter_scores").to_pylist() == [[203, 201, 204], [0, 9, 2], [507, 507, 501]]


def test_chat_metrics_on_hand_worked_ranks():
    scores = np.zeros((4, 20))
    scores[0, :] = -np.arange(20)  # target (position 0) first
    scores[1, :] = -np.arange(20)  # target at position 2: rank 3
    scores[2, :3] = [5, 5, 1]  # target (position 1) tied first with position 0
    # row 3: all equal, the target anywhere: the random expectation
    m = chat_metrics(scores, np.array([0, 2, 1, 7]))
    assert m["rank"].tolist() == [1, 3, 1.5, 10.5]
    assert m["hit@1"].tolist() == [1, 0, 0.5, pytest.approx(0.05)]
    assert m["hit@5"].tolist() == [1, 1, 1, pytest.approx(0.25)]
    assert m.at[1, "ndcg@5"] == pytest.approx(0.5)  # 1 / log2(3 + 1)
    assert m.at[2, "ndcg@10"] == pytest.approx((1 + 1 / np.log2(3)) / 2)
    assert m.at[3, "ndcg@5"] == pytest.approx(RANDOM["ndcg@5"])
    assert RANDOM["ndcg@5"] == pytest.approx(0.1474, abs=1e-4)
    assert RANDOM["ndcg@10"] == pytest.approx(0.2272, abs=1e-4)
    with pytest.raises(ValueError, match="NaN"):
        chat_metrics(np.full((1, 20), np.nan), np.array([0]))


TITLES = ["Toy Story", "Godfather, The", "Godfather: Part II, The", "E.T. the Extra-Terrestrial"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("C", 2),
        ("B.", 1),
        ("The answer is (D)", 3),
        ("Answer: A", 0),
        ("toy story!", 0),
        ("I recommend The Godfather (1972).", 1),
        ("The Godfather: Part II", 2),  # not also "The Godfather" inside it
        ("E.T. the Extra-Terrestrial", 3),  # its dots name no letters E or T
        ("A. Toy Story", 0),
        ("Toy Story or The Godfather", -1),
        ("A. The Godfather", -1),
        ("A great film about family", -1),
        ("Nothing here fits.", -1),
        ("", -1),
    ],
)
def test_match_answer(answer, expected):
    assert match_answer(answer, TITLES, letters(4)) == expected


# --- the description metrics ----------------------------------------------------------------------


def test_rouge_of_identical_strings_is_one_and_of_disjoint_zero():
    out = rouge(["a quiet drama in Paris", "red blue"], ["a quiet drama in Paris", "green"])
    assert out.loc[0].tolist() == [1.0, 1.0, 1.0]
    assert out.loc[1].tolist() == [0.0, 0.0, 0.0]
    assert rouge(["x"], [None]).isna().all(axis=None)


def test_genre_f1_hand_worked():
    assert item_genres("Title: X; Year: 1995; Genres: Comedy, Drama, unknown") == [
        "Comedy",
        "Drama",
    ]
    assert item_genres("Title: Y; Category: Shoes") == ["Shoes"]
    named = genres_named("A funny COMEDY for children's nights, with thrillers", GENRES)
    assert named == {"Comedy", "Children's", "Thriller"}
    # named {Comedy, Thriller}, true {Comedy, Drama}: 2 * 1 / (2 + 2)
    assert genre_f1("a comedy with thrillers", ["Comedy", "Drama"], GENRES) == 0.5
    assert genre_f1("a sci-fi drama", ["Sci-Fi", "Drama"], GENRES) == 1.0
    assert genre_f1("nothing", ["Drama"], GENRES) == 0.0
    assert np.isnan(genre_f1("a drama", [], GENRES))


# --- the table, the figure and the examples ---------------------------------------------


class BagOfLetters:
    """A sentence-encoder stand-in: letter counts."""

    def get_embedding_dimension(self) -> int:
        return 26

    def encode(self, texts, **_):
        out = np.zeros((len(texts), 26), np.float32)
        for row, text in enumerate(texts):
            for ch in text.lower():
                if "a" <= ch <= "z":
                    out[row, ord(ch) - 97] += 1
        return out + 1e-3


def chat_file(path, candidates, *, quality, seed, answers=True, keys=None):
    """A chat row: scores that favour the target by ``quality`` plus noise, answers that name
    the top candidate's letter (or nothing for every fourth user)."""
    rng = np.random.default_rng(seed)
    items = candidate_items(candidates)
    target = candidates.column("target_position").to_numpy()
    scores = rng.normal(size=items.shape)
    scores[np.arange(len(items)), target] += quality
    table = scores_table(candidates.column("user_id").to_numpy(), scores)
    if answers:
        top = scores.argmax(1)
        said = [f"{letters(20)[t]}." if u % 4 else "I cannot tell." for u, t in enumerate(top)]
        table = table.append_column("answer", pa.array(said, pa.string()))
    path.parent.mkdir(parents=True, exist_ok=True)
    if keys is not None:
        table = mbr_split.stamp_run(table, **keys)
    pq.write_table(table, path)
    return str(path)


@pytest.fixture(scope="module")
def rows(shop):
    root = shop["root"]
    every = pq.read_table(shop["candidates"])
    # The LLM is asked some users; the ID models score every test user's list.
    asked_users = root / "asked.parquet"
    pq.write_table(every.select(["user_id"]).slice(0, every.num_rows - 2), asked_users)
    candidates = mbr_split.asked_candidates(shop["candidates"], asked_users)
    chat, chat_id, descriptions = [], [], []
    for seed in (0, 1):
        for row, quality in (("zero_shot", 0.0), ("text", 2.0)):
            keys = {"dataset": "shop", "model": row, "seed": seed}
            path = root / "chat" / row / f"seed{seed}" / "per_user.parquet"
            chat.append(chat_file(path, candidates, quality=quality, seed=10 + seed, keys=keys))
        # The unified row's files are the text row's, byte for byte but for the run keys.
        keys = {"dataset": "shop", "model": "unified", "seed": seed}
        path = root / "chat" / "unified" / f"seed{seed}" / "per_user.parquet"
        chat.append(chat_file(path, candidates, quality=2.0, seed=10 + seed, keys=keys))
        path = root / "pop" / f"seed{seed}" / "chat.parquet"
        chat_id.append(chat_file(path, every, quality=1.0, seed=20, answers=False))
        write_json(path.parent / "summary.json", {"dataset": "shop", "model": "pop", "seed": seed})
    items = pq.read_table(shop["describe"]).column("item_id").to_pylist()
    texts = pq.read_table(shop["item_text"]).column("text").to_pylist()
    said = {
        "unified": [texts[i] for i in items],
        "unified_no_llm": ["a film" for _ in items],
        "zero_shot_title": [texts[i].split(";")[0] + " is a comedy" for i in items],
    }
    for row, descs in said.items():
        path = root / "describe" / row / "seed0" / "descriptions.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.table({"item_id": pa.array(items, pa.int32()), "description": descs})
        pq.write_table(mbr_split.stamp_run(table, dataset="shop", model=row, seed=0), path)
        descriptions.append(str(path))
    profiles = root / "profiles.parquet"
    pq.write_table(
        pa.table(
            {
                "item_id": pa.array(range(N_ITEMS), pa.int32()),
                "summary": [f"A story-driven film number {i}." for i in range(N_ITEMS)],
                "valid": [i % 3 != 0 for i in range(N_ITEMS)],
            }
        ),
        profiles,
    )
    return {
        "candidates": str(shop["candidates"]),
        "chat_users": str(asked_users),
        "describe_items": str(shop["describe"]),
        "item_text": str(shop["item_text"]),
        "sequences": str(shop["sequences"]),
        "profiles": str(profiles),
        "chat": chat,
        "chat_id": chat_id,
        "descriptions": descriptions,
    }


def test_table_end_to_end(rows, tmp_path):
    out = {k: str(tmp_path / f"mbr_text.{e}") for k, e in (("table", "csv"), ("markdown", "md"))}
    out["html"] = str(tmp_path / "mbr_text.html")
    mbr_text.mbr_text_table(rows, out, encoder=BagOfLetters())
    table = pd.read_csv(out["table"]).set_index(["task", "model"])
    users = pq.read_metadata(rows["chat_users"]).num_rows
    assert users < pq.read_metadata(rows["candidates"]).num_rows
    random = table.loc[("chat", "Random (expectation)")]
    assert random["hit@1"] == 0.05 and random["hit@5"] == 0.25
    assert random["ndcg@10"] == pytest.approx(0.2272, abs=1e-4) and random["prompts"] == users
    text = table.loc[("chat", "LLM + adapter, text only")]
    unified = table.loc[("chat", "LLM + adapter + soft tokens (unified)")]
    # Identical rows: the same means, and the copy's test against the other finds nothing.
    assert unified["hit@5"] == text["hit@5"] and unified["seeds"] == 2
    assert unified["hit@5_vs"] == "LLM + adapter, text only"
    assert unified["hit@5_p"] > 0.5
    pop = table.loc[("chat", "Pop")]
    assert np.isnan(pop["gen_hit@1"]) and not np.isnan(pop["hit@1"]) and pop["prompts"] == users
    zero = table.loc[("chat", "LLM zero-shot")]
    assert zero["valid"] == pytest.approx(1 - np.mean([u % 4 == 0 for u in range(users)]))
    assert zero["gen_hit@1"] <= zero["gen_hit@1_valid"]
    described = table.loc[("description", "LLM + adapter + soft tokens (unified)")]
    assert described["rouge1"] == 1.0 and described["cosine"] == pytest.approx(1.0)
    assert described["genre_f1"] == 1.0 and described["prompts"] == 6
    assert np.isnan(described["hit@1"])
    upper = table.loc[("description", "LLM zero-shot given the title (upper reference)")]
    assert upper["rouge1_vs"] == "LLM + adapter + soft tokens (unified)"
    markdown = open(out["markdown"]).read()
    assert "### chat" in markdown and "### description" in markdown
    assert "partly circular" in markdown and "One seed only" in markdown
    assert "HR@1 (generation, valid answers only)" in open(out["html"]).read()


def test_figure_and_examples(rows, tmp_path):
    table = {"table": str(tmp_path / "t.csv"), "markdown": str(tmp_path / "t.md")}
    table["html"] = str(tmp_path / "t.html")
    mbr_text.mbr_text_table(rows, table, encoder=BagOfLetters())
    figure = tmp_path / "mbr_chat.png"
    mbr_text.mbr_chat_figure({"table": table["table"]}, {"figure": str(figure)})
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    examples = tmp_path / "examples.md"
    mbr_text.mbr_examples(rows, {"examples": str(examples)}, users=2, items=2)
    page = examples.read_text()
    assert page.count("**target**") == 2 and page.count("### Item") == 2
    assert "I cannot tell." in page and "LLM zero-shot" in page
    assert "A story-driven film" in page and "Genres:" in page


def test_a_file_without_its_run_is_one_sentence(tmp_path):
    path = tmp_path / "per_user.parquet"
    pq.write_table(pa.table({"user_id": pa.array([0], pa.int32())}), path)
    with pytest.raises(ValueError, match="records no run"):
        mbr_split.read_run_keys(path)
    stamped = mbr_split.stamp_run(pq.read_table(path), dataset="d", model="text", seed=2)
    pq.write_table(stamped, path)
    assert mbr_split.read_run_keys(path)["seed"] == 2
    assert json.loads(stamped.schema.metadata[b"llmrec.run"])["model"] == "text"
