"""Last.fm HetRec 2011 (music artists; month-granular timestamps, 1-3 word names, user tags) → kgrec files.

    # the raw files, from a public GitHub copy of hetrec2011-lastfm-2k (fetched into /work/.mirror):
    python -m benchmarks.datasets.lastfm --git-dir /work/.mirror/rafaelpossas+admusic/repo
    # or from a folder holding artists.dat, tags.dat, user_taggedartists.dat (as in the GroupLens zip)
    python -m benchmarks.datasets.lastfm --raw DIR [--out /work/datasets/lastfm-hetrec2011]

Interactions are the distinct (user, artist) pairs of the tag assignments, each at the month of its
first tag assignment (the data's time stamps are months: most of a user's artists share one);
assignments dated before 2005 (5 rows, years 1956-1979: corrupt) are dropped. ``user_artists.dat``
(listening counts) has no time and is not used. Items are the artists that occur, titled by their
name (the few absent from artists.dat have no title); tags.csv holds the tag assignments (user, artist, tag text). No knowledge-graph facts.
The data's licence allows non-commercial use only: the output is never committed.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
from pathlib import Path

import pandas as pd

from benchmarks.datasets._common import DATA_HOME, check_sha256, user_subsample, write_tables

log = logging.getLogger(__name__)

NAME = "lastfm-hetrec2011"
#: sha256 of the raw files this converter was written for (hetrec2011-lastfm-2k, as in rafaelpossas/admusic,
#: where user_taggedartists.dat is split into two files at user 1223)
SHA256 = {
    "artists.dat": "c173881362c6b28551368fecb3c0be5a6a30a6cd859e1f5775413dfe46d48648",
    "tags.dat": "e95175f259be4c0c47644ae23d66131cd6d5767142a1405000e79f5584691d70",
    "user_taggedartists.dat": "7d46ca9d9abfd2a5018d42e3f1ed21e04981d608c376cb12f7c7285a94c37f89",
    "user_taggedartists_2.dat": "e2dd14c47c66201662f593acb825ff7de6239a84acb1f24c6fa01ac1ad6909d6",
}


def extract_from_git(git_dir: Path, raw: Path, folder: str = "data") -> None:
    """Copy the raw files out of a git mirror (``git show HEAD:<folder>/<file>``) into ``raw``."""
    raw.mkdir(parents=True, exist_ok=True)
    for f in SHA256:
        blob = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"HEAD:{folder}/{f}"], check=True,
                              capture_output=True).stdout
        (raw / f).write_bytes(blob)


def convert(raw: Path, out: Path, user_fraction: float = 1.0, check: bool = True) -> dict[str, pd.DataFrame]:
    """Read the raw HetRec files in ``raw`` and write interactions.csv, items.csv, tags.csv to ``out``."""
    parts = [f for f in ("user_taggedartists.dat", "user_taggedartists_2.dat") if (raw / f).exists()]
    for f in ["artists.dat", "tags.dat", *parts]:
        if not (raw / f).exists():
            raise FileNotFoundError(f"{raw / f}: missing; see benchmarks/datasets/README.md for where to get it")
        if check:
            check_sha256(raw / f, SHA256[f])
    ta = pd.concat([pd.read_csv(raw / f, sep="\t") for f in parts], ignore_index=True)
    ta = ta[ta["year"] >= 2005]
    ta = ta[user_subsample(ta["userID"], user_fraction).to_numpy()]
    when = pd.to_datetime(dict(year=ta["year"], month=ta["month"], day=ta["day"]), utc=True)
    ta = ta.assign(timestamp=(when - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta(seconds=1))
    inter = (ta.groupby(["userID", "artistID"], as_index=False)["timestamp"].min()
             .rename(columns={"userID": "user", "artistID": "item"}).sort_values(["user", "timestamp", "item"]))
    artists = pd.read_csv(raw / "artists.dat", sep="\t", quoting=3, dtype=str)
    names = (artists.rename(columns={"id": "item", "name": "title"})[["item", "title"]]
             .assign(item=lambda d: d["item"].astype(int)))
    # some tagged artists are missing from artists.dat: they stay, as items without a name
    items = pd.DataFrame({"item": sorted(inter["item"].unique())}).merge(names, on="item", how="left")
    log.info("%d of %d artists have no name in artists.dat", int(items["title"].isna().sum()), len(items))
    tag_names = pd.read_csv(raw / "tags.dat", sep="\t", encoding="latin-1", dtype={"tagValue": str})
    tags = (ta.merge(tag_names, on="tagID")[["userID", "artistID", "tagValue"]]
            .rename(columns={"userID": "user", "artistID": "item", "tagValue": "tag"}).dropna().drop_duplicates())
    tags = tags[tags["tag"].str.strip() != ""]
    tables = {"interactions": inter, "items": items, "tags": tags}
    write_tables(out, tables)
    return tables


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", type=Path, default=DATA_HOME / "raw" / NAME, help="folder of the raw .dat files")
    ap.add_argument("--git-dir", type=Path, help="a git mirror holding the raw files under data/ (copied to --raw)")
    ap.add_argument("--out", type=Path, default=DATA_HOME / NAME)
    ap.add_argument("--user-fraction", type=float, default=1.0, help="deterministic user subsample (sha1 of the id)")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if a.git_dir:
        extract_from_git(a.git_dir, a.raw)
    convert(a.raw, a.out, a.user_fraction)


if __name__ == "__main__":
    main()
