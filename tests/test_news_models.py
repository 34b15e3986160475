"""NRMS, NAML and LSTUR on tiny random batches: shapes, the shared interface, masking, training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from llmrec.news import (
    LSTUR,
    AdditiveAttention,
    MultiHeadSelfAttention,
    SentenceNewsEncoder,
    build_model,
    default_settings,
)
from llmrec.news.base import NewsRecommender

VOCAB, CATEGORIES, SUBCATEGORIES, USERS = 40, 4, 6, 5
N, B, H, C, SENTENCE_DIM = 10, 3, 4, 5, 12
TINY = {
    "nrms": {"word_dim": 16, "heads": 2, "head_dim": 4, "query_dim": 8},
    "naml": {"word_dim": 16, "filters": 8, "window": 3, "query_dim": 8, "category_dim": 4},
    "lstur": {"word_dim": 16, "filters": 8, "window": 3, "query_dim": 8, "category_dim": 4},
}
NAMES = sorted(TINY)
# Right padding, padding in the middle, left padding, and a user with no click.
HISTORY_MASK = torch.tensor(
    [[True, True, True, False], [False, True, False, True], [False, False, True, True]]
)


def tokens(rows: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """Random token ids with 0-padding after a random length of 1 .. ``length``."""
    ids = torch.randint(1, VOCAB, (rows, length), generator=generator)
    lengths = torch.randint(1, length + 1, (rows, 1), generator=generator)
    return ids.masked_fill(torch.arange(length) >= lengths, 0)


def make_batch(seed: int = 0, empty_user: bool = True) -> dict:
    g = torch.Generator().manual_seed(seed)
    abstract = tokens(N, 7, g)
    abstract[3] = 0  # an article without abstract
    mask = HISTORY_MASK.clone()
    if empty_user:
        mask = torch.cat([mask, torch.zeros(1, H, dtype=torch.bool)])
    return {
        "news": {
            "title": tokens(N, 6, g),
            "abstract": abstract,
            "category": torch.randint(0, CATEGORIES, (N,), generator=g),
            "subcategory": torch.randint(0, SUBCATEGORIES, (N,), generator=g),
            "vectors": torch.randn(N, SENTENCE_DIM, generator=g),
        },
        "history": torch.randint(0, N, mask.shape, generator=g),
        "history_mask": mask,
        "candidates": torch.stack([torch.randperm(N, generator=g)[:C] for _ in mask]),
        "users": torch.tensor([1, 0, 4, 2][: len(mask)]),
    }


def make_model(name: str, **settings) -> NewsRecommender:
    torch.manual_seed(0)
    return build_model(
        name,
        vocab_size=VOCAB,
        num_categories=CATEGORIES,
        num_subcategories=SUBCATEGORIES,
        num_users=USERS,
        settings={**TINY[name], **settings},
    )


def sentence_model(name: str, **settings) -> NewsRecommender:
    return make_model(name, news_encoder="sentence", sentence_dim=SENTENCE_DIM, **settings)


# ---------------------------------------------------------------------------------- layers


def test_additive_attention_pools_real_positions_and_zero_for_none():
    torch.manual_seed(0)
    attention = AdditiveAttention(3, query_dim=4)
    x = torch.randn(2, 4, 3)
    mask = torch.tensor([[True, False, True, True], [False, False, False, False]])
    out = attention(x, mask)

    scores = attention.query(torch.tanh(attention.projection(x[0, [0, 2, 3]]))).squeeze(-1)
    expected = scores.softmax(0) @ x[0, [0, 2, 3]]
    torch.testing.assert_close(out[0], expected)
    assert torch.equal(out[1], torch.zeros(3))


def test_self_attention_ignores_masked_keys_and_survives_empty_rows():
    torch.manual_seed(0)
    attention = MultiHeadSelfAttention(5, heads=2, head_dim=3)
    x = torch.randn(2, 4, 5)
    mask = torch.tensor([[True, True, False, False], [False, False, False, False]])
    changed = x.clone()
    changed[0, 2:] = torch.randn(2, 5)
    out, out_changed = attention(x, mask), attention(changed, mask)
    assert out.shape == (2, 4, 6) and torch.isfinite(out).all()
    torch.testing.assert_close(out[0, :2], out_changed[0, :2])
    torch.testing.assert_close(out[0, :2], attention(x[:1, :2])[0])


# ---------------------------------------------------------------------------------- models


@pytest.mark.parametrize("name", NAMES)
def test_forward_shapes(name):
    model = make_model(name).eval()
    batch = make_batch()
    news = model.encode_news(batch["news"])
    users = model.encode_user(news[batch["history"]], batch["history_mask"], batch["users"])
    scores = model(batch)
    assert news.shape == (N, model.news_dim)
    assert users.shape == (4, model.news_dim)
    assert scores.shape == (4, C) and torch.isfinite(scores).all()
    torch.testing.assert_close(scores, (news[batch["candidates"]] * users[:, None]).sum(-1))


@pytest.mark.parametrize("name", NAMES)
def test_news_encoder_runs_once_over_the_unique_articles(name):
    model = make_model(name).eval()
    calls = []
    model.news_encoder.register_forward_hook(
        lambda module, args, out: calls.append((args[0]["title"].shape[0], out.shape[0]))
    )
    batch = make_batch()
    batch["candidates"][:, 1] = batch["candidates"][:, 0]  # a repeated article
    scores = model(batch)
    assert calls == [(N, N)]
    torch.testing.assert_close(scores[:, 1], scores[:, 0])


@pytest.mark.parametrize("name", NAMES)
def test_extra_padding_tokens_do_not_change_news_vectors(name):
    model = make_model(name).eval()
    news = make_batch()["news"]
    longer = {
        **news,
        "title": F.pad(news["title"], (0, 3)),
        "abstract": F.pad(news["abstract"], (0, 2)),
    }
    torch.testing.assert_close(model.encode_news(longer), model.encode_news(news))


@pytest.mark.parametrize("name", NAMES)
def test_loss_is_cross_entropy_with_positive_first_and_training_lowers_it(name):
    model = make_model(name, dropout=0.0)
    if isinstance(model, LSTUR):
        model.user_mask_prob = 0.0
    batch = make_batch(empty_user=False)  # an empty history cannot be fitted
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(10):
        scores = model(batch)
        loss = model.loss(scores)
        optimizer.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        optimizer.step()
        losses.append(loss.item())
    torch.testing.assert_close(loss, -F.log_softmax(scores, dim=1)[:, 0].mean())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.3 * losses[0]


@pytest.mark.parametrize("name", NAMES)
def test_user_without_clicks_gets_finite_scores_and_gradients(name):
    model = make_model(name)
    batch = make_batch()
    scores = model(batch)
    model.loss(scores).backward()
    assert torch.isfinite(scores).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    news = model.encode_news(batch["news"])
    user = model.encode_user(
        news[batch["history"][3:]], batch["history_mask"][3:], batch["users"][3:]
    )
    # NRMS and NAML pool nothing; LSTUR falls back on the long-term embedding (zeros at init).
    assert torch.equal(user, torch.zeros(1, model.news_dim))


@pytest.mark.parametrize("name", NAMES)
def test_padded_history_slots_do_not_change_scores(name):
    model = make_model(name).eval()
    batch = make_batch()
    if isinstance(model, LSTUR):
        with torch.no_grad():  # non-zero long-term embeddings, so they too are checked
            model.user_embedding.weight.normal_()
    scores = model(batch)
    padded = batch["history_mask"].logical_not()
    batch["history"] = torch.where(padded, (batch["history"] + 1) % N, batch["history"])
    torch.testing.assert_close(model(batch), scores)
    # Real clicks do count.
    batch["history"] = (batch["history"] + 1) % N
    assert not torch.allclose(model(batch)[:3], scores[:3])


@pytest.mark.parametrize("name", NAMES)
def test_left_and_right_padding_give_the_same_scores(name):
    model = make_model(name).eval()
    batch = make_batch(empty_user=False)
    # Rows 1 and 2 hold their two clicks in the middle and on the right; put them on the left.
    left = {**batch, "history": batch["history"].clone(), "history_mask": batch["history_mask"]}
    for row in (1, 2):
        clicks = batch["history"][row][batch["history_mask"][row]]
        left["history"][row] = torch.cat([clicks, torch.zeros(H - 2, dtype=torch.long)])
    left["history_mask"] = torch.tensor(
        [[True, True, True, False]] + [[True, True, False, False]] * 2
    )
    torch.testing.assert_close(model(left), model(batch))


@pytest.mark.parametrize("name", NAMES)
def test_eval_is_deterministic_and_train_is_not(name):
    model = make_model(name)
    batch = make_batch()
    assert not torch.equal(model(batch), model(batch))  # dropout is on
    model.eval()
    assert torch.equal(model(batch), model(batch))


def test_lstur_masks_long_term_embedding_in_training_only():
    model = make_model("lstur", user_mask_prob=1.0, dropout=0.0)
    batch = make_batch(empty_user=False)  # users 1, 0 (unknown), 4
    model.eval()
    model.loss(model(batch)).backward()
    grad = model.user_embedding.weight.grad
    assert grad[[1, 4]].abs().sum(1).min() > 0 and torch.equal(grad[0], torch.zeros(16))
    with torch.no_grad():
        model.user_embedding.weight[1:].normal_()
    other = {**batch, "users": torch.tensor([3, 2, 1])}
    assert not torch.allclose(model(other), model(batch))
    model.train()
    torch.testing.assert_close(model(other), model(batch))  # every user masked


@pytest.mark.parametrize("name", NAMES)
def test_sentence_vectors_replace_the_word_encoder(name):
    model = sentence_model(name).eval()
    batch = make_batch()
    batch["news"] = {"vectors": batch["news"]["vectors"]}  # no tokens needed
    scores = model(batch)
    assert isinstance(model.news_encoder, SentenceNewsEncoder)
    assert scores.shape == (4, C) and torch.isfinite(scores).all()
    model.loss(scores).backward()
    assert model.news_encoder.projection.weight.grad.abs().sum() > 0
    batch["news"]["vectors"][batch["candidates"][0, 0]] += 1.0
    assert not torch.allclose(model(batch)[0], scores[0])


def test_word_vectors_initialise_and_freeze_the_embedding():
    vectors = torch.randn(VOCAB, 16)
    model = build_model(
        "nrms",
        vocab_size=VOCAB,
        num_categories=CATEGORIES,
        num_subcategories=SUBCATEGORIES,
        num_users=USERS,
        settings={**TINY["nrms"], "freeze_words": True},
        word_vectors=vectors,
    )
    weight = model.news_encoder.embedding.weight
    torch.testing.assert_close(weight[1:], vectors[1:])
    assert torch.equal(weight[0], torch.zeros(16)) and not weight.requires_grad
    with pytest.raises(ValueError, match="word_vectors has shape"):
        build_model(
            "nrms",
            vocab_size=VOCAB,
            num_categories=CATEGORIES,
            num_subcategories=SUBCATEGORIES,
            num_users=USERS,
            settings=TINY["nrms"],
            word_vectors=torch.randn(VOCAB, 8),
        )


def test_build_model_defaults_and_errors():
    assert default_settings("nrms") | {
        "heads": 20,
        "head_dim": 20,
        "query_dim": 200,
        "word_dim": 300,
        "dropout": 0.2,
    } == default_settings("nrms")
    assert default_settings("naml")["filters"] == 400
    assert default_settings("lstur")["user_mask_prob"] == 0.5
    assert make_model("naml").news_dim == 8
    assert make_model("lstur").news_dim == 8 + 2 * 4
    with pytest.raises(ValueError, match="unknown news model 'dkn'"):
        build_model(
            "dkn", vocab_size=VOCAB, num_categories=1, num_subcategories=1, num_users=1, settings={}
        )
    with pytest.raises(ValueError, match=r"unknown settings \['npratio'\]"):
        make_model("nrms", npratio=4)
    with pytest.raises(ValueError, match="news_encoder must be one of"):
        make_model("nrms", news_encoder="bert")


def test_training_logs_the_batches_of_each_epoch(monkeypatch, caplog):
    """Six impressions with one click each, batches of 4: each epoch's batches done reach the
    log (a line at every batch with a 0 s interval), bar or no bar alike."""
    import numpy as np

    from llmrec import progress
    from llmrec.news.data import NewsFeatures
    from llmrec.news.sampling import Impressions
    from llmrec.news.train import train_news_model

    monkeypatch.setattr(progress, "INTERVAL_S", 0.0)
    caplog.set_level("INFO")
    g = torch.Generator().manual_seed(0)
    features = NewsFeatures(
        title=tokens(N, 6, g).numpy(),
        abstract=tokens(N, 7, g).numpy(),
        category=np.arange(N) % CATEGORIES,
        subcategory=np.arange(N) % SUBCATEGORIES,
        vocab=["<pad>", "<unk>"] + [f"w{i}" for i in range(2, VOCAB)],
        categories=[f"c{i}" for i in range(CATEGORIES)],
    )
    n = 6  # impressions of 5 candidates, the first clicked; histories of 2 articles
    imps = Impressions(
        ids=np.arange(n),
        users=np.arange(n) % USERS,
        times=np.arange(n),
        offsets=np.arange(0, 5 * n + 1, 5),
        candidates=np.array([(i + j) % N for i in range(n) for j in range(5)]),
        labels=np.tile(np.array([1, 0, 0, 0, 0], dtype=np.int8), n),
        h_offsets=np.arange(0, 2 * n + 1, 2),
        history=np.arange(2 * n) % N,
    )
    model = make_model("nrms")
    train_news_model(model, features, imps, imps.users, k=2, epochs=2, batch_size=4)
    heads = [r.getMessage().split(" in ")[0] for r in caplog.records if r.name == "llmrec.progress"]
    assert heads == [f"epoch {e}/2: {b}/2 batches ({50 * b}%)" for e in (1, 2) for b in (1, 2)]


@pytest.mark.parametrize("mode", ["add", "replace"])
def test_training_with_popular_negatives_in_both_modes(mode):
    """add trains a (1 + k + popk)-way softmax, replace a (k + 1)-way one; both learn."""
    import numpy as np

    from llmrec.news.data import NewsFeatures
    from llmrec.news.sampling import Impressions, Popularity, sample_negatives
    from llmrec.news.train import train_news_model

    g = torch.Generator().manual_seed(0)
    features = NewsFeatures(
        title=tokens(N, 6, g).numpy(),
        abstract=tokens(N, 7, g).numpy(),
        category=np.arange(N) % CATEGORIES,
        subcategory=np.arange(N) % SUBCATEGORIES,
        vocab=["<pad>", "<unk>"] + [f"w{i}" for i in range(2, VOCAB)],
        categories=[f"c{i}" for i in range(CATEGORIES)],
    )
    n = 12
    imps = Impressions(
        ids=np.arange(n),
        users=np.arange(n) % USERS,
        times=np.arange(n) * 3600,
        offsets=np.arange(0, 5 * n + 1, 5),
        candidates=np.array([(3 * i + j) % N for i in range(n) for j in range(5)]),
        labels=np.tile(np.array([1, 0, 0, 0, 0], dtype=np.int8), n),
        h_offsets=np.arange(0, 2 * n + 1, 2),
        history=np.arange(2 * n) % N,
    )
    popularity = Popularity(*imps.clicks(), N, pool_size=N)
    _, _, negatives, _ = sample_negatives(
        imps, 2, 2, np.random.default_rng(0), popularity, mode=mode
    )
    assert negatives.shape[1] == (4 if mode == "add" else 2)
    history = train_news_model(
        make_model("nrms"),
        features,
        imps,
        imps.users,
        k=2,
        popk=2,
        popularity=popularity,
        mode=mode,
        epochs=1,
        batch_size=4,
        progress=False,
    )
    assert np.isfinite(history[0]["loss"]) and history[0]["samples"] == n
