"""HetRec 2011 Last.fm 2K: tab-separated files, each with a header line.

- ``user_taggedartists-timestamps.dat``: ``userID, artistID, tagID, timestamp`` (milliseconds),
  one row per tag a user gave an artist;
- ``artists.dat``: ``id, name, url, pictureURL`` (UTF-8; ``pictureURL`` is empty for some);
- ``tags.dat``: ``tagID, tagValue``, Latin-1 encoded, optional.

Decisions, following the sequences that S3Rec and OpenP5 build from this dataset:

- A (user, artist) pair is one ``listen`` event, timed by the user's first tag of that artist
  (floor of milliseconds / 1000); there is no rating. ``user_artists.dat`` (listening counts, no
  times) is not read: its pairs that the user never tagged have no time and are left out, and
  tagged pairs outside the user's 50 most played artists are kept. A handful of tag times in the
  real file are negative or decades early; they are kept as they are.
- ``source_row`` is the line of that first tag. The file lists a user's tags by artist id, so
  artists first tagged at the same time keep that order.
- Items are all artists of ``artists.dat`` in file order: ``title`` is the name, ``category`` the
  tag most users gave the artist (ties: the smaller tag id; null without ``tags.dat`` or tags),
  no description; ``url`` is kept, the mostly dead ``pictureURL`` is not.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from ..readers import read_delimited
from . import find_file


def load(con: duckdb.DuckDBPyConnection, raw_dir: Path, options: dict, scratch: Path) -> None:
    skip = options.get("skip_malformed", False)
    tab = {"delim": "\t", "header": True, "skip_malformed": skip}
    read_delimited(
        con,
        "lastfm_tagged",
        find_file(raw_dir, "user_taggedartists-timestamps.dat"),
        {
            "user_id": "INTEGER",
            "artist_id": "INTEGER",
            "tag_id": "INTEGER",
            "timestamp_ms": "BIGINT",
        },
        **tab,
    )
    read_delimited(
        con,
        "lastfm_artists",
        find_file(raw_dir, "artists.dat"),
        {"id": "INTEGER", "name": "VARCHAR", "url": "VARCHAR", "picture_url": "VARCHAR"},
        **tab,
    )
    try:
        tags_path = find_file(raw_dir, "tags.dat")
    except FileNotFoundError:
        con.execute("CREATE OR REPLACE TEMP TABLE lastfm_tags (tag_id INTEGER, tag VARCHAR)")
    else:
        read_delimited(
            con,
            "lastfm_tags",
            tags_path,
            {"tag_id": "INTEGER", "tag": "VARCHAR"},
            encoding="latin-1",
            **tab,
        )

    con.execute("""
        CREATE OR REPLACE TEMP TABLE raw_interactions AS
        SELECT user_id::VARCHAR AS user_key, artist_id::VARCHAR AS item_key,
               floor(min(timestamp_ms) / 1000)::BIGINT AS timestamp,
               'listen' AS behaviour, NULL::FLOAT AS rating,
               first(rowid ORDER BY timestamp_ms, rowid) AS source_row
        FROM lastfm_tagged GROUP BY user_id, artist_id""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE raw_items AS
        WITH uses AS (
            SELECT artist_id, tag_id, count(*) AS n FROM lastfm_tagged GROUP BY artist_id, tag_id
        ),
        top_tag AS (
            SELECT u.artist_id, first(t.tag ORDER BY u.n DESC, u.tag_id) AS tag
            FROM uses u JOIN lastfm_tags t USING (tag_id) GROUP BY u.artist_id
        )
        SELECT a.id::VARCHAR AS item_key, a.rowid AS ord, a.name AS title,
               top_tag.tag AS category, NULL::VARCHAR AS description, a.url
        FROM lastfm_artists a LEFT JOIN top_tag ON top_tag.artist_id = a.id
        ORDER BY ord""")
    con.execute("DROP TABLE lastfm_tagged; DROP TABLE lastfm_artists; DROP TABLE lastfm_tags")
