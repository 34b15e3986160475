"""News inputs: vocabulary from training articles, features, histories, unique-article batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from llmrec.news.data import (
    PAD,
    UNK,
    build_features,
    histories,
    tokenize,
    train_batch,
    user_numbering,
)

from .test_news_sampling import impressions


def items() -> pa.Table:
    return pa.table(
        {
            "item_id": pa.array([0, 1, 2], pa.int32()),
            "title": ["Storm hits the coast", "Team wins final!", "Unseen dev words here"],
            "description": ["Heavy rain.", None, "More unseen words"],
            "category": ["weather", "sports", "finance"],
            "subcategory": ["storms", "football", "markets"],
        }
    )


def test_tokenize_like_recommenders():
    assert tokenize("Team wins final! Really, 3-1") == [
        "team",
        "wins",
        "final",
        "!",
        "really",
        ",",
        "3",
        "1",
    ]
    assert tokenize(None) == []


def test_vocabulary_and_categories_come_from_training_articles_only():
    f = build_features(items(), np.array([0, 1]), title_len=5, abstract_len=3)
    assert f.vocab[:2] == ["<pad>", "<unk>"] and "unseen" not in f.vocab
    assert f.title[0].tolist() == [f.vocab.index(w) for w in ("storm", "hits", "the", "coast")] + [
        PAD
    ]
    assert (f.title[2][:4] == UNK).all()  # a dev-only article: every word unknown
    assert f.category[2] == 0 and f.category[0] != f.category[1] != 0
    assert f.abstract[1].tolist() == [PAD] * 3
    # Columns that are padding in every selected article are cut off.
    news = f.select(np.array([1]))
    assert news["title"].shape == (1, 4) and news["abstract"].shape == (1, 1)


def test_histories_are_the_latest_clicks_left_aligned():
    imps = impressions(
        [
            {"user": 0, "time": 0, "history": [5, 6, 7], "candidates": [1, 2], "labels": [1, 0]},
            {"user": 1, "time": 1, "history": [], "candidates": [1, 2], "labels": [0, 1]},
        ]
    )
    hist, mask = histories(imps, np.array([0, 1]), 2)
    assert hist.tolist() == [[6, 7], [0, 0]] and mask.tolist() == [[True, True], [False, False]]


def test_train_batch_refers_to_unique_articles():
    f = build_features(items(), np.array([0, 1, 2]))
    imps = impressions(
        [{"user": 3, "time": 0, "history": [2, 0], "candidates": [0, 1, 2], "labels": [0, 1, 0]}]
    )
    batch = train_batch(
        f,
        imps,
        np.array([0, 0]),
        np.array([1, 1]),
        np.array([[0], [2]]),
        np.array([1, 1]),
        history_len=5,
    )
    assert len(batch["news"]["title"]) == 3  # articles 0, 1, 2 once each
    unique = np.array([0, 1, 2])
    assert unique[batch["candidates"].numpy()].tolist() == [[1, 0], [1, 2]]
    assert unique[batch["history"].numpy()][0, :2].tolist() == [2, 0]
    assert batch["history_mask"].tolist() == [[True, True, False, False, False]] * 2


def test_user_numbering_gives_unknown_users_zero():
    assert user_numbering(np.array([7, 3, 7]), np.array([3, 7, 9])).tolist() == [1, 2, 0]


def test_minilm_word_vectors_average_wordpieces():
    import torch

    from llmrec.studies.popk import minilm_word_vectors

    vectors = minilm_word_vectors(["<pad>", "<unk>", "storm", "footballers"])
    assert vectors.shape == (4, 384)
    assert torch.count_nonzero(vectors[0]) == 0  # padding stays zero
    assert vectors[2].norm() > 0 and not torch.equal(vectors[2], vectors[3])


def test_glove_word_vectors_read_a_glove_text_file():
    from llmrec.studies.popk import glove_word_vectors

    path = Path(__file__).parent / "fixtures" / "glove" / "tiny.3d.txt"
    torch.manual_seed(0)
    vectors = glove_word_vectors(["<pad>", "<unk>", "storm", "the", "rare", "."], path, 3)
    assert vectors.shape == (6, 3)
    assert vectors[0].tolist() == [0.0, 0.0, 0.0]  # padding
    assert vectors[2].tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert vectors[3].tolist() == pytest.approx([1.0, 0.0, -1.0])  # "The", lower-cased
    assert vectors[5].tolist() == pytest.approx([0.0, 0.0, 0.1])
    assert 0 < vectors[4].abs().max() < 1  # not in the file: a small random vector
    with pytest.raises(ValueError, match="line 1: expected a word and 4 numbers"):
        glove_word_vectors(["<pad>", "<unk>"], path, 4)


def test_missing_glove_file_is_one_sentence(tmp_path):
    from llmrec.studies.popk import glove_word_vectors

    with pytest.raises(FileNotFoundError, match=r"no GloVe file .*word_init: minilm"):
        glove_word_vectors(["<pad>", "<unk>"], tmp_path / "glove.840B.300d.txt", 300)
