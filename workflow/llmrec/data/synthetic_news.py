"""A seeded generator of SYNTHETIC news logs in MIND's file format.

The files (``synthetic_train`` and ``synthetic_dev``, each with ``news.tsv`` and
``behaviors.tsv``) are byte-compatible with MIND (Wu et al., ACL 2020), so the MIND parser reads
them unchanged. Every url is ``https://example.invalid/synthetic/<news id>`` and the folder holds
a README.txt, so the data are labelled synthetic wherever they appear.

Generative process (times in hours; hour 0 is midnight UTC of ``start``):

1. **Topics.** 13 MIND categories with MIND-like shares (news and sports dominate), each with
   two to four subcategories and a vocabulary of topic words; each subcategory stresses a fixed
   third of its topic's words.
2. **Articles.** ``n_news`` articles are published uniformly over the warm-up, the logged days
   and ``shelf_hours`` before them. Article *j* has a topic *c_j* drawn by the shares, a uniform
   subcategory, a latent quality *q_j ~ LogNormal(0, quality_sigma)*, and text: a title of 6 to
   12 and an abstract of 14 to 28 words, each word a topic word (55% of title words, 40% of
   abstract words; a subcategory word in 40% of those) or else a common English word, so that a
   text model can learn topics from titles.
3. **Popularity.** An article's attractiveness at age *a* hours is
   *A_j(a) = q_j 2^(-a / half_life_hours)*: it appears at publication and halves every
   ``half_life_hours``. Articles leave the shelf after ``shelf_hours``.
4. **Users.** User *u* has topic interests *θ_u ~ Dirichlet(topic_concentration · shares)*
   (small concentrations give focused readers) and an activity *α_u ~ LogNormal* with mean 1.
   User *u* has *Poisson(impressions_per_user · α_u)* impressions in the logged days and
   *Poisson(impressions_per_user · α_u · warmup_days / n_days)* in the warm-up, at uniform times.
5. **Impressions.** An impression at time *t* shows *L = min(2 + Poisson(mean_candidates - 2),
   max_candidates)* articles from the shelf, without repeats: *Binomial(L, popular_share)*
   popular slots drawn with probability proportional to the current attractiveness, the rest
   uniform among the other shelf articles (fresh and niche ones), in random order.
6. **Clicks.** The user clicks *1 + Poisson(extra_clicks)* of the shown articles (at most *L*;
   MIND impressions have at least one click), chosen one after another without replacement by a
   multinomial logit: *P(j) ∝ (θ_u[c_j] + 0.01)^affinity_weight · A_j(t)^popularity_weight*
   (Gumbel top-k). The popularity factor puts a popularity bias into the logs.
7. **History and splits.** As in MIND, a user's history is the same in every impression: the
   clicks of the warm-up days, which are not logged, oldest first. The logged days form
   ``synthetic_train`` except the last ``dev_days``, which form ``synthetic_dev`` (MIND's dev is the
   day after train). Impression ids restart at 1 in each split; each split's news.tsv lists the
   articles its behaviors mention, by id. News ids ``N1, N2, ...`` follow publication order, user
   ids ``U1, U2, ...`` the draw.

One ``numpy.random.default_rng(seed)`` drives every draw in a fixed order, so a seed gives
byte-identical files.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

from ..io import atomic_path

# category: (share of articles, subcategories, topic words)
TOPICS: dict[str, tuple[float, tuple[str, ...], tuple[str, ...]]] = {
    "news": (
        0.26,
        ("newsus", "newspolitics", "newsworld", "newscrime"),
        (
            "senate",
            "governor",
            "election",
            "police",
            "court",
            "vote",
            "president",
            "congress",
            "mayor",
            "judge",
            "protest",
            "officials",
            "campaign",
            "investigation",
            "policy",
            "trial",
            "border",
            "lawmakers",
        ),
    ),
    "sports": (
        0.24,
        ("football_nfl", "basketball_nba", "baseball_mlb", "soccer"),
        (
            "coach",
            "season",
            "quarterback",
            "playoff",
            "touchdown",
            "team",
            "league",
            "injury",
            "score",
            "championship",
            "roster",
            "draft",
            "fans",
            "victory",
            "defense",
            "stadium",
            "rookie",
            "trade",
        ),
    ),
    "finance": (
        0.07,
        ("markets", "finance-companies", "personalfinance"),
        (
            "stocks",
            "market",
            "investors",
            "earnings",
            "shares",
            "economy",
            "retirement",
            "savings",
            "bank",
            "interest",
            "rates",
            "profit",
            "tax",
            "dividend",
            "inflation",
            "budget",
        ),
    ),
    "foodanddrink": (
        0.06,
        ("recipes", "restaurantsandnews"),
        (
            "recipe",
            "dinner",
            "chicken",
            "dessert",
            "restaurant",
            "chef",
            "baking",
            "cheese",
            "soup",
            "pie",
            "menu",
            "coffee",
            "salad",
            "flavor",
            "kitchen",
            "wine",
        ),
    ),
    "lifestyle": (
        0.06,
        ("lifestyleroyals", "lifestylebuzz", "lifestylehomeandgarden"),
        (
            "royal",
            "wedding",
            "home",
            "garden",
            "fashion",
            "holiday",
            "family",
            "style",
            "decor",
            "gift",
            "pets",
            "dog",
            "shopping",
            "princess",
            "design",
            "celebration",
        ),
    ),
    "travel": (
        0.04,
        ("traveltrivia", "travelnews"),
        (
            "flight",
            "airport",
            "hotel",
            "beach",
            "island",
            "cruise",
            "vacation",
            "airline",
            "passengers",
            "destination",
            "resort",
            "tourists",
            "trip",
            "park",
            "city",
            "luggage",
        ),
    ),
    "weather": (
        0.04,
        ("weathertopstories", "weathernews"),
        (
            "storm",
            "snow",
            "rain",
            "forecast",
            "temperatures",
            "winds",
            "hurricane",
            "flood",
            "cold",
            "heat",
            "tornado",
            "freeze",
            "warning",
            "showers",
            "weekend",
            "degrees",
        ),
    ),
    "health": (
        0.04,
        ("wellness", "medical", "weightloss"),
        (
            "doctors",
            "study",
            "sleep",
            "diet",
            "cancer",
            "heart",
            "patients",
            "exercise",
            "weight",
            "vaccine",
            "symptoms",
            "hospital",
            "brain",
            "fitness",
            "disease",
            "healthy",
        ),
    ),
    "autos": (
        0.04,
        ("autosnews", "autosenthusiasts"),
        (
            "car",
            "truck",
            "engine",
            "electric",
            "driver",
            "sedan",
            "recall",
            "horsepower",
            "dealer",
            "suv",
            "pickup",
            "road",
            "model",
            "racing",
            "mileage",
            "brakes",
        ),
    ),
    "tv": (
        0.04,
        ("tvnews", "tv-celebrity"),
        (
            "episode",
            "series",
            "finale",
            "host",
            "network",
            "show",
            "season",
            "streaming",
            "sitcom",
            "cast",
            "premiere",
            "contestant",
            "reality",
            "ratings",
            "drama",
            "spinoff",
        ),
    ),
    "music": (
        0.03,
        ("musicnews", "music-celebrity"),
        (
            "album",
            "singer",
            "tour",
            "concert",
            "band",
            "song",
            "grammy",
            "rapper",
            "stage",
            "guitar",
            "lyrics",
            "festival",
            "chart",
            "single",
            "duet",
            "playlist",
        ),
    ),
    "movies": (
        0.04,
        ("movienews", "movies-celebrity"),
        (
            "film",
            "director",
            "actor",
            "actress",
            "sequel",
            "trailer",
            "box",
            "office",
            "premiere",
            "oscar",
            "studio",
            "franchise",
            "script",
            "screen",
            "villain",
            "blockbuster",
        ),
    ),
    "entertainment": (
        0.04,
        ("celebrity", "entertainment-celebrity"),
        (
            "celebrity",
            "star",
            "divorce",
            "couple",
            "instagram",
            "photos",
            "interview",
            "award",
            "red",
            "carpet",
            "gossip",
            "fans",
            "birthday",
            "baby",
            "rumor",
            "tribute",
        ),
    ),
}

COMMON_WORDS = (
    "the",
    "a",
    "of",
    "to",
    "in",
    "for",
    "on",
    "with",
    "after",
    "how",
    "why",
    "what",
    "new",
    "says",
    "first",
    "over",
    "more",
    "this",
    "week",
    "year",
    "people",
    "report",
    "could",
    "about",
    "just",
    "now",
    "top",
    "big",
    "best",
    "here",
    "is",
    "are",
    "and",
    "at",
    "your",
    "will",
    "back",
    "last",
    "may",
    "one",
)

TIME_ORIGIN = datetime(1970, 1, 1, tzinfo=UTC)
CHUNK = 1024  # impressions simulated together; bounds the chunk x shelf work arrays


@dataclass(frozen=True)
class _Articles:
    topic: np.ndarray  # (n_news,) category index
    published: np.ndarray  # (n_news,) hours, sorted
    log_quality: np.ndarray  # (n_news,)


def _text(
    rng: np.random.Generator,
    topic_words: np.ndarray,
    sub_words: np.ndarray,
    n_words: int,
    topic_share: float,
) -> list[str]:
    kind = rng.random(n_words)
    words = []
    for u in kind:
        if u < topic_share * 0.4:
            words.append(sub_words[rng.integers(len(sub_words))])
        elif u < topic_share:
            words.append(topic_words[rng.integers(len(topic_words))])
        else:
            words.append(COMMON_WORDS[rng.integers(len(COMMON_WORDS))])
    return words


def _news_rows(rng: np.random.Generator, topic: np.ndarray) -> list[str]:
    """Return the news.tsv line of every article, in id order."""
    names = list(TOPICS)
    sub_vocab = {}
    for name, (_, subs, words) in TOPICS.items():
        for sub in subs:
            pick = rng.choice(len(words), size=max(1, len(words) // 3), replace=False)
            sub_vocab[name, sub] = np.asarray(words)[np.sort(pick)]
    lines = []
    for j, c in enumerate(topic):
        name = names[c]
        _, subs, words = TOPICS[name]
        sub = subs[rng.integers(len(subs))]
        topic_words = np.asarray(words)
        title = _text(rng, topic_words, sub_vocab[name, sub], int(rng.integers(6, 13)), 0.55)
        abstract = _text(rng, topic_words, sub_vocab[name, sub], int(rng.integers(14, 29)), 0.4)
        news_id = f"N{j + 1}"
        lines.append(
            "\t".join(
                (
                    news_id,
                    name,
                    sub,
                    " ".join(title).capitalize(),
                    " ".join(abstract).capitalize() + ".",
                    f"https://example.invalid/synthetic/{news_id}",
                    "[]",
                    "[]",
                )
            )
            + "\n"
        )
    return lines


def _top_k(keys: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k largest keys of each row, largest first."""
    k = min(k, keys.shape[1])
    if k == 0:
        return np.zeros((keys.shape[0], 0), dtype=np.int64)
    part = np.argpartition(-keys, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(keys, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def _simulate(
    rng: np.random.Generator,
    articles: _Articles,
    interests: np.ndarray,
    users: np.ndarray,
    hours: np.ndarray,
    p: dict,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield ``(impression index, shown article ids, click labels)`` per impression.

    ``users`` and ``hours`` describe the impressions, sorted by time.
    """
    log2 = math.log(2.0)
    for lo in range(0, len(users), CHUNK):
        u, t = users[lo : lo + CHUNK], hours[lo : lo + CHUNK]
        first = np.searchsorted(articles.published, t[0] - p["shelf_hours"], side="left")
        last = np.searchsorted(articles.published, t[-1], side="right")
        pool = np.arange(first, last)
        age = t[:, None] - articles.published[None, pool]
        on_shelf = (age >= 0) & (age <= p["shelf_hours"])
        decay = log2 * age / p["half_life_hours"]
        log_attr = np.where(on_shelf, articles.log_quality[pool] - decay, -np.inf)
        n_shelf = on_shelf.sum(axis=1)
        length = np.minimum(
            2 + rng.poisson(p["mean_candidates"] - 2, size=len(u)), p["max_candidates"]
        )
        length = np.minimum(length, n_shelf)
        n_pop = rng.binomial(length, p["popular_share"])
        n_fresh = length - n_pop

        # Popular slots: Gumbel top-k samples without replacement in proportion to attractiveness.
        popular = _top_k(log_attr + rng.gumbel(size=log_attr.shape), int(n_pop.max(initial=0)))
        taken = np.zeros_like(on_shelf)
        rows, cols = np.nonzero(np.arange(popular.shape[1])[None, :] < n_pop[:, None])
        taken[rows, popular[rows, cols]] = True
        fresh = _top_k(
            np.where(on_shelf & ~taken, rng.random(on_shelf.shape), -1.0),
            int(n_fresh.max(initial=0)),
        )

        shown = np.concatenate([popular, fresh], axis=1)
        valid = np.concatenate(
            [
                np.arange(popular.shape[1])[None, :] < n_pop[:, None],
                np.arange(fresh.shape[1])[None, :] < n_fresh[:, None],
            ],
            axis=1,
        )
        order = np.argsort(np.where(valid, rng.random(valid.shape), 2.0), axis=1)
        shown = np.take_along_axis(shown, order, axis=1)
        valid = np.take_along_axis(valid, order, axis=1)

        affinity = interests[u[:, None], articles.topic[pool[shown]]]
        utility = (
            p["affinity_weight"] * np.log(affinity + 0.01)
            + p["popularity_weight"] * np.take_along_axis(log_attr, shown, axis=1)
            + rng.gumbel(size=shown.shape)
        )
        utility = np.where(valid, utility, -np.inf)
        n_clicks = np.minimum(1 + rng.poisson(p["extra_clicks"], size=len(u)), length)
        rank = np.argsort(np.argsort(-utility, axis=1, kind="stable"), axis=1, kind="stable")
        clicked = rank < n_clicks[:, None]

        for i in range(len(u)):
            if length[i] == 0:
                continue  # an empty shelf (only possible with very few articles): no impression
            n = length[i]
            yield lo + i, pool[shown[i, :n]], clicked[i, :n].astype(np.int8)


def _format_time(seconds: int) -> str:
    moment = TIME_ORIGIN + timedelta(seconds=seconds)
    hour = moment.hour % 12 or 12
    half = "AM" if moment.hour < 12 else "PM"
    return (
        f"{moment.month}/{moment.day}/{moment.year} "
        f"{hour}:{moment.minute:02d}:{moment.second:02d} {half}"
    )


def _impression_times(rng: np.random.Generator, counts: np.ndarray, lo_s: int, hi_s: int):
    """Return users and times (whole seconds) of all impressions, sorted by time."""
    users = np.repeat(np.arange(len(counts)), counts)
    seconds = rng.integers(lo_s, hi_s, size=len(users))
    order = np.argsort(seconds, kind="stable")
    return users[order], seconds[order]


def generate(
    out_dir: Path,
    *,
    seed: int,
    n_users: int = 5000,
    n_news: int = 3000,
    n_days: int = 7,
    impressions_per_user: float = 6.0,
    dev_days: int = 1,
    warmup_days: int = 7,
    start: date | str = date(2019, 11, 9),
    mean_candidates: float = 20.0,
    max_candidates: int = 60,
    popular_share: float = 0.5,
    shelf_hours: float = 48.0,
    half_life_hours: float = 12.0,
    quality_sigma: float = 1.0,
    topic_concentration: float = 2.0,
    activity_sigma: float = 1.0,
    affinity_weight: float = 2.0,
    popularity_weight: float = 1.0,
    extra_clicks: float = 0.3,
) -> dict:
    """Write SYNTHETIC MIND-format logs below ``out_dir``; return counts of what was written.

    Args (the module docstring gives the process they drive):
        out_dir: gets ``synthetic_train/`` and ``synthetic_dev/`` (news.tsv, behaviors.tsv) and
            a README.txt.
        seed: seeds the one random generator; the same arguments give byte-identical files.
        n_users: users drawn (those without logged impressions do not appear in the files).
        n_news: articles published over the warm-up and logged days.
        n_days: logged days; the last ``dev_days`` of them form the dev split.
        impressions_per_user: mean logged impressions of a user with average activity.
        dev_days: days at the end of the log that form ``synthetic_dev`` (default 1, like MIND).
        warmup_days: days before the log whose clicks form the users' histories.
        start: the first logged day (midnight UTC, a date or "YYYY-MM-DD"); MIND-small's
            train log starts 2019-11-09.
        mean_candidates: mean number of articles an impression shows (at least 2).
        max_candidates: the most articles an impression shows.
        popular_share: chance that a slot is filled by attractiveness rather than uniformly.
        shelf_hours: how long after publication an article can be shown.
        half_life_hours: hours in which an article's attractiveness halves.
        quality_sigma: log-scale spread of the articles' latent quality.
        topic_concentration: Dirichlet concentration of user interests (small: focused users).
        activity_sigma: log-scale spread of user activity.
        affinity_weight: exponent of the topic affinity in the click choice model.
        popularity_weight: exponent of the current attractiveness in the click choice model.
        extra_clicks: mean number of clicks beyond the first in an impression.
    """
    if not 0 < dev_days < n_days:
        raise ValueError(
            f"dev_days must lie between 1 and n_days - 1 = {n_days - 1}, got {dev_days}"
        )
    if mean_candidates < 2:
        raise ValueError(f"mean_candidates must be at least 2, got {mean_candidates}")
    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    params = dict(
        mean_candidates=mean_candidates,
        max_candidates=max_candidates,
        popular_share=popular_share,
        shelf_hours=shelf_hours,
        half_life_hours=half_life_hours,
        affinity_weight=affinity_weight,
        popularity_weight=popularity_weight,
        extra_clicks=extra_clicks,
    )

    shares = np.array([share for share, _, _ in TOPICS.values()])
    shares /= shares.sum()
    published = np.sort(rng.uniform(-warmup_days * 24 - shelf_hours, n_days * 24, size=n_news))
    articles = _Articles(
        topic=rng.choice(len(shares), size=n_news, p=shares),
        published=published,
        log_quality=rng.normal(0.0, quality_sigma, size=n_news),
    )
    news_lines = _news_rows(rng, articles.topic)

    interests = rng.dirichlet(topic_concentration * shares, size=n_users)
    activity = rng.lognormal(-(activity_sigma**2) / 2, activity_sigma, size=n_users)
    logged = rng.poisson(impressions_per_user * activity)
    warm = rng.poisson(impressions_per_user * activity * warmup_days / n_days)

    # Warm-up: the clicks become each user's history, oldest first, without repeats.
    users, seconds = _impression_times(rng, warm, -warmup_days * 86400, 0)
    history: list[dict[int, None]] = [{} for _ in range(n_users)]
    for i, shown, labels in _simulate(rng, articles, interests, users, seconds / 3600, params):
        history[users[i]].update(dict.fromkeys(shown[labels == 1].tolist()))

    users, seconds = _impression_times(rng, logged, 0, n_days * 86400)
    dev_from = (n_days - dev_days) * 86400
    first_day = date.fromisoformat(str(start))
    offset = int(
        (
            datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC) - TIME_ORIGIN
        ).total_seconds()
    )
    splits = ("train", "dev")
    counts = dict.fromkeys(("train", "dev", "clicks", "candidates"), 0)
    mentioned = {split: np.zeros(n_news, dtype=bool) for split in splits}
    history_lengths: dict[int, int] = {}
    with contextlib.ExitStack() as stack:
        # Every file is renamed into place only after all of them were written.
        tmp = {
            (split, name): stack.enter_context(atomic_path(out_dir / f"synthetic_{split}" / name))
            for split in splits
            for name in ("behaviors.tsv", "news.tsv")
        }
        readme = stack.enter_context(atomic_path(out_dir / "README.txt"))
        behaviours = {
            split: stack.enter_context(
                open(tmp[split, "behaviors.tsv"], "w", encoding="utf-8", newline="\n")
            )
            for split in splits
        }
        for i, shown, labels in _simulate(rng, articles, interests, users, seconds / 3600, params):
            user, second = int(users[i]), int(seconds[i])
            split = "dev" if second >= dev_from else "train"
            counts[split] += 1
            counts["clicks"] += int(labels.sum())
            counts["candidates"] += len(shown)
            past = list(history[user])
            history_lengths.setdefault(user, len(past))
            mentioned[split][shown] = True
            mentioned[split][past] = True
            behaviours[split].write(
                "\t".join(
                    (
                        str(counts[split]),
                        f"U{user + 1}",
                        _format_time(offset + second),
                        " ".join(f"N{j + 1}" for j in past),
                        " ".join(
                            f"N{j + 1}-{label}" for j, label in zip(shown.tolist(), labels.tolist())
                        ),
                    )
                )
                + "\n"
            )
        for fh in behaviours.values():
            fh.close()
        for split in splits:
            with open(tmp[split, "news.tsv"], "w", encoding="utf-8", newline="\n") as fh:
                fh.writelines(news_lines[j] for j in np.flatnonzero(mentioned[split]))
        readme.write_text(
            "SYNTHETIC news logs in MIND format, generated by llmrec.data.synthetic_news "
            f"(seed {seed}).\nNo real user or article is described here; every url points to "
            "example.invalid/synthetic.\n"
        )

    lengths = np.array(list(history_lengths.values()), dtype=float)
    n_impressions = counts["train"] + counts["dev"]
    return {
        "users": len(lengths),
        "news": int((mentioned["train"] | mentioned["dev"]).sum()),
        "impressions_train": counts["train"],
        "impressions_dev": counts["dev"],
        "clicks": counts["clicks"],
        "mean_candidates": counts["candidates"] / max(n_impressions, 1),
        "mean_history": float(lengths.mean()) if len(lengths) else 0.0,
        "empty_history_share": float((lengths == 0).mean()) if len(lengths) else 0.0,
    }
