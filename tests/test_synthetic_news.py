from pathlib import Path

import duckdb
import pytest

from llmrec.data.sources import mind
from llmrec.data.synthetic_news import TOPICS, generate

SMALL = dict(n_users=300, n_news=300, n_days=3, impressions_per_user=3.0)
FILES = (
    "synthetic_train/news.tsv",
    "synthetic_train/behaviors.tsv",
    "synthetic_dev/news.tsv",
    "synthetic_dev/behaviors.tsv",
    "README.txt",
)


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> tuple[dict, duckdb.DuckDBPyConnection]:
    """A mid-sized run (about 9,000 logged impressions) read back by the MIND parser."""
    out = tmp_path_factory.mktemp("synthetic")
    stats = generate(out, seed=3, n_users=1500, n_news=1200, n_days=5)
    con = duckdb.connect()
    mind.load(con, out, {}, out / "scratch")
    con.execute("""
        CREATE TEMP TABLE shown AS
        SELECT impression_key, user_key, timestamp, unnest(candidates) AS item,
               unnest(labels) AS clicked
        FROM raw_impressions""")
    return stats, con


def test_same_seed_gives_identical_bytes(tmp_path: Path):
    generate(tmp_path / "a", seed=11, **SMALL)
    generate(tmp_path / "b", seed=11, **SMALL)
    generate(tmp_path / "c", seed=12, **SMALL)
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / FILES[1]).read_bytes() != (tmp_path / "c" / FILES[1]).read_bytes()
    assert not list(tmp_path.rglob("*.tmp"))


def test_mind_parser_reads_the_files(logs):
    stats, con = logs
    counts = dict(
        con.execute("SELECT split, count(*) FROM raw_impressions GROUP BY split").fetchall()
    )
    assert counts == {"train": stats["impressions_train"], "dev": stats["impressions_dev"]}
    assert con.execute("SELECT count(*) FROM raw_interactions").fetchone()[0] == stats["clicks"]
    assert con.execute("SELECT count(*) FROM raw_items").fetchone()[0] == stats["news"]
    assert (
        con.execute("SELECT count(DISTINCT user_key) FROM raw_impressions").fetchone()[0]
        == stats["users"]
    )
    assert con.execute(
        "SELECT bool_and(url = 'https://example.invalid/synthetic/' || item_key) FROM raw_items"
    ).fetchone()[0]
    assert {
        row[0] for row in con.execute("SELECT DISTINCT category FROM raw_items").fetchall()
    } <= set(TOPICS)
    # dev is the last day: 2019-11-13, after every train impression
    last_train, first_dev = con.execute(
        "SELECT max(timestamp) FILTER (split = 'train'), min(timestamp) FILTER (split = 'dev') "
        "FROM raw_impressions"
    ).fetchone()
    assert last_train < 1573603200 <= first_dev


def test_every_impression_has_a_click_and_no_repeats(logs):
    _, con = logs
    min_clicks, no_repeats, min_shown = con.execute("""
        SELECT min(list_sum(labels)), bool_and(len(list_distinct(candidates)) = len(candidates)),
               min(len(candidates))
        FROM raw_impressions""").fetchone()
    assert min_clicks == 1 and no_repeats and min_shown >= 2


def test_history_is_fixed_per_user_and_sometimes_empty(logs):
    stats, con = logs
    assert (
        con.execute(
            "SELECT max(n) FROM (SELECT count(DISTINCT history) AS n "
            "FROM raw_impressions GROUP BY user_key)"
        ).fetchone()[0]
        == 1
    )
    assert 0 < stats["empty_history_share"] < 0.5


def test_clicks_decay_after_the_first_day(logs):
    _, con = logs
    first_day, second_day = con.execute("""
        WITH first_seen AS (SELECT item, min(timestamp) AS t0 FROM shown GROUP BY item)
        SELECT sum(clicked) FILTER (timestamp < t0 + 86400),
               sum(clicked) FILTER (timestamp >= t0 + 86400 AND timestamp < t0 + 2 * 86400)
        FROM shown JOIN first_seen USING (item)""").fetchone()
    assert first_day > 3 * second_day


def test_popular_articles_have_a_higher_click_rate(logs):
    _, con = logs
    top, bottom_half = con.execute("""
        WITH per_item AS (SELECT item, count(*) AS shows, sum(clicked) AS clicks,
                                 ntile(4) OVER (ORDER BY count(*), item) AS quartile
                          FROM shown GROUP BY item)
        SELECT sum(clicks) FILTER (quartile = 4) / sum(shows) FILTER (quartile = 4),
               sum(clicks) FILTER (quartile <= 2) / sum(shows) FILTER (quartile <= 2)
        FROM per_item""").fetchone()
    assert top > 2 * bottom_half


def test_titles_reveal_their_topic(logs):
    _, con = logs
    topic_of = {word: topic for topic, (_, _, words) in TOPICS.items() for word in words}
    rows = con.execute("SELECT title, category FROM raw_items").fetchall()
    hits = 0
    for title, category in rows:
        votes = [topic_of[w] for w in title.lower().split() if w in topic_of]
        hits += bool(votes) and max(set(votes), key=votes.count) == category
    assert hits / len(rows) > 0.8


def test_refuses_a_dev_period_as_long_as_the_log(tmp_path: Path):
    with pytest.raises(ValueError, match="dev_days"):
        generate(tmp_path, seed=1, n_days=2, dev_days=2)
    assert not any(tmp_path.iterdir())
