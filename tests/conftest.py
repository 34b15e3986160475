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
