"""MovieLens 100K (943 users with age, gender, occupation, zip; 1,682 movies; 100,000 ratings) → kgrec files.

    # the raw files, from a public GitHub copy of ml-100k (fetched into /work/.mirror):
    python -m benchmarks.datasets.ml100k --git-dir /work/.mirror/Raffaello+scala-spark-movie-demo/repo
    # or from a folder holding u.data, u.item, u.user, u.genre (as in GroupLens' ml-100k.zip)
    python -m benchmarks.datasets.ml100k --raw DIR [--out /work/datasets/ml-100k]

This is the data set with **user attributes** (the users file, docs/data-format.md):

- interactions.csv: every rating is an interaction (implicit feedback; the 1-5 rating kept), time stamps in
  seconds as in ``u.data``;
- items.csv: the title (``u.item`` is latin-1; written as UTF-8) and the genres as categories, spelt as the
  MovieLens latest-small loader spells them (``Sci-Fi`` → ``Sci Fi``, the genre ``unknown`` dropped);
- triples.csv: ``(item, released_in, year)``, the year in the title as in ``kgrec.loaders.movielens``, else the
  year of the release date (one movie, 267 "unknown", has neither);
- users.csv: ``user, age:number, gender:category, occupation:category, region:category``. Age is numeric, so
  kgrec puts it into 5 quantile bands over the file's ages (``NUMERIC_BANDS``). The zip code itself is left out
  (795 distinct codes for 943 users: almost every value would be a node linking one user, no signal to share)
  and replaced by a coarse ``region``: the first digit of a US zip code (the USPS national area, ``zip 0xxxx`` =
  the north-east … ``zip 9xxxx`` = the west coast; 56 to 170 users each), ``Canada`` for the 18 Canadian postal
  codes (they start with a letter). The values are written so that an explanation reads ("people who share your
  region, zip 3xxxx, …").

The data's licence allows research use only and forbids redistribution: the output is never committed.
"""

from __future__ import annotations

import argparse
import logging
import re
import subprocess
from pathlib import Path

import pandas as pd

from benchmarks.datasets._common import DATA_HOME, check_sha256, write_tables

log = logging.getLogger(__name__)

NAME = "ml-100k"
#: sha256 of the GroupLens ml-100k files (the same bytes in three independent GitHub copies:
#: Raffaello/scala-spark-movie-demo, 1MT3J45/rec-engine for u.user, Cuddlemuffin007/movie_review_app for u.item)
SHA256 = {
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
    "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
}
#: lines of the GroupLens files, checked before the sums (a clearer message for a truncated or padded copy)
ROWS = {"u.data": 100_000, "u.item": 1_682, "u.user": 943}
ENCODING = "latin-1"  # u.item's titles (Misérables, Cérémonie, …); the other files are ASCII
_YEAR = re.compile(r"\((\d{4})\)\s*$")
_US_ZIP = re.compile(r"^\d{5}$")


def extract_from_git(git_dir: Path, raw: Path, folder: str = "ml-100k") -> None:
    """Copy the raw files out of a git mirror (``git show HEAD:<folder>/<file>``) into ``raw``."""
    raw.mkdir(parents=True, exist_ok=True)
    for f in SHA256:
        blob = subprocess.run(
            ["git", f"--git-dir={git_dir}", "show", f"HEAD:{folder}/{f}"], check=True, capture_output=True
        ).stdout
        (raw / f).write_bytes(blob)


def region(zip_code: str) -> str:
    """The coarse region of a ml-100k zip code: ``zip 3xxxx`` (the first digit of a 5-digit US code, its USPS
    national area), ``Canada`` for a Canadian postal code (it starts with a letter), ``other`` for anything else."""
    z = zip_code.strip()
    if _US_ZIP.match(z):
        return f"zip {z[0]}xxxx"
    return "Canada" if z[:1].isalpha() else "other"


def _read(raw: Path, name: str, columns: list[object]) -> pd.DataFrame:
    sep = "\t" if name == "u.data" else "|"
    return pd.read_csv(
        raw / name, sep=sep, header=None, names=columns, dtype=str, encoding=ENCODING, keep_default_na=False, quoting=3
    )


def convert(raw: Path, out: Path, check: bool = True) -> dict[str, pd.DataFrame]:
    """Read ml-100k's ``u.data``, ``u.item``, ``u.user``, ``u.genre`` in ``raw`` and write interactions.csv,
    items.csv, triples.csv and users.csv to ``out``. ``check=False`` skips the sha256 and row-count checks
    (for hand-made samples in the same format)."""
    for f in SHA256:
        if not (raw / f).exists():
            raise FileNotFoundError(f"{raw / f}: missing; see benchmarks/datasets/README.md for where to get it")
        if check:
            lines = (raw / f).read_bytes().count(b"\n")
            if f in ROWS and lines != ROWS[f]:
                raise ValueError(
                    f"{raw / f}: {lines:,} lines, expected {ROWS[f]:,} (the GroupLens ml-100k file); "
                    "see benchmarks/datasets/README.md for where to get it"
                )
            check_sha256(raw / f, SHA256[f])
    data = _read(raw, "u.data", ["user", "item", "rating", "timestamp"])
    movies = _read(raw, "u.item", ["item", "title", "release", "video", "url", *range(19)])
    people = _read(raw, "u.user", ["user", "age", "gender", "occupation", "zip"])
    genre_rows = (raw / "u.genre").read_text(encoding=ENCODING).splitlines()
    genres = {int(n): g for g, n in (r.rsplit("|", 1) for r in genre_rows if r.strip())}
    if sorted(genres) != list(range(19)):
        raise ValueError(f"{raw / 'u.genre'}: genre numbers {sorted(genres)}, expected 0 to 18")

    inter = data.assign(timestamp=data["timestamp"].astype("int64"), rating=data["rating"].astype(int)).sort_values(
        ["user", "timestamp", "item"], key=_numeric_ids
    )[["user", "item", "timestamp", "rating"]]
    flags = movies[list(range(19))] == "1"
    names = [genres[g].replace("-", " ") for g in range(19)]
    cats = flags.apply(
        lambda row: "|".join(
            n for n, on, g in zip(names, row, range(19), strict=True) if on and genres[g] != "unknown"
        ),
        axis=1,
    )
    items = pd.DataFrame({"item": movies["item"], "title": movies["title"].str.strip(), "categories": cats})
    year = movies["title"].str.extract(_YEAR, expand=False)
    year = year.fillna(movies["release"].str.extract(r"(\d{4})$", expand=False))
    triples = pd.DataFrame({"item": movies["item"], "relation": "released_in", "entity": year}).dropna()
    users = pd.DataFrame(
        {
            "user": people["user"],
            "age:number": people["age"].astype(int),
            "gender:category": people["gender"],
            "occupation:category": people["occupation"],
            "region:category": people["zip"].map(region),
        }
    )
    tables = {"interactions": inter, "items": items, "triples": triples, "users": users}
    write_tables(out, tables)
    return tables


def _numeric_ids(col: pd.Series) -> pd.Series:
    """Sort key: ids as numbers where they are (ml-100k numbers users and items from 1)."""
    return pd.to_numeric(col, errors="coerce") if col.name in ("user", "item") else col


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--raw", type=Path, default=DATA_HOME / "raw" / NAME, help="folder of u.data, u.item, u.user, u.genre"
    )
    ap.add_argument("--git-dir", type=Path, help="a git mirror holding the raw files under ml-100k/ (copied to --raw)")
    ap.add_argument("--out", type=Path, default=DATA_HOME / NAME)
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if a.git_dir:
        extract_from_git(a.git_dir, a.raw)
    convert(a.raw, a.out)


if __name__ == "__main__":
    main()
