"""MovieLens latest-small, following the torch-geometric dataset convention.

``root`` holds the folder ``ml-latest-small`` with the raw CSV files. Files that
are present are used (and checked against known checksums); missing files are
downloaded from GroupLens, checked, and moved into place atomically. Offline and
without files, a :class:`~kgrec.errors.DatasetNotFoundError` says where to put them.

The data's licence (README.txt in the folder) allows research use only and
redistribution only under the same terms: kgrec never ships or commits it.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pandas as pd

from kgrec._atomic import fsync_dir, sha256_file
from kgrec.errors import DatasetNotFoundError
from kgrec.loaders import schema as S
from kgrec.loaders.files import read_table
from kgrec.loaders.tables import from_frames

log = logging.getLogger(__name__)

NAME = "ml-latest-small"
URL = "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
#: sha256 of the files of the September 2018 release of ml-latest-small
SHA256: dict[str, str] = {
    "movies.csv": "c47b783f23eb304413307e1bb05335e427737da20ec8d3c0e96335567dd5f3dc",
    "ratings.csv": "80da8b3393dae325bbba5a31f291a6ba55d8d4f4396de3c456f2c1635b1b70e8",
    "tags.csv": "68eec00a0820c2faa8863a6df7032f13d5899a4462bce9a97213905297ff3d34",
    "links.csv": "028a4a1d17751ca9276e0e0718cfc22356350f224a996e1ec348c23274b9209d",
}
REQUIRED = ("movies.csv", "ratings.csv", "tags.csv")
_YEAR = re.compile(r"\((\d{4})\)\s*$")


def raw_dir(root: str | Path) -> Path:
    """The folder the raw files live in: ``root/ml-latest-small``.

    ``root`` may also name that folder itself.
    """
    r = Path(root).expanduser()
    return r if r.name == NAME else r / NAME


def download(root: str | Path, url: str = URL, timeout: float = 30.0) -> Path:
    """Download and unpack the archive into ``raw_dir(root)``, verifying checksums.

    The archive goes to a temporary file, is unpacked into a temporary folder,
    every file is checked against :data:`SHA256`, and only then are the files
    renamed into place.
    """
    dest = raw_dir(root)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".ml-download-") as tmp:
        archive = Path(tmp) / "archive.zip"
        log.info("downloading %s", url)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(archive, "wb") as out:
                shutil.copyfileobj(resp, out)
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            raise DatasetNotFoundError(
                f"MovieLens latest-small is not under {dest} and could not be downloaded from {url} ({e}). "
                f"Offline? Put {', '.join(REQUIRED)} from ml-latest-small.zip into {dest}."
            ) from None
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        unpacked = Path(tmp) / NAME
        for fname, digest in SHA256.items():
            got = sha256_file(unpacked / fname)
            if got != digest:
                raise DatasetNotFoundError(
                    f"{url}: {fname} has sha256 {got}, expected {digest}; the download is corrupt or a "
                    f"different release. Put the 2018 release's files into {dest} by hand."
                )
        dest.mkdir(exist_ok=True)
        for f in unpacked.iterdir():
            target = dest / f.name
            if not target.exists():
                f.replace(target)
        fsync_dir(dest)
    return dest


def ensure_files(root: str | Path, *, download_missing: bool = True) -> Path:
    """Return the raw folder, downloading the files if any required one is missing."""
    d = raw_dir(root)
    missing = [f for f in REQUIRED if not (d / f).is_file()]
    if missing:
        if not download_missing:
            raise DatasetNotFoundError(
                f"{d}: missing {', '.join(missing)}; put the files of ml-latest-small.zip there (from {URL})"
            )
        download(root)
    for f in REQUIRED:
        got = sha256_file(d / f)
        if got != SHA256[f]:
            log.warning("%s: sha256 %s differs from the 2018 release's; using it anyway", d / f, got[:12])
    return d


def movielens(root: str | Path, *, download_missing: bool = True) -> S.Dataset:
    """Load MovieLens latest-small as a canonical :class:`~kgrec.loaders.schema.Dataset`.

    Mapping: ratings → interactions (every rating counts as an interaction, the
    rating kept); movies → items with the title, genres → categories ("(no
    genres listed)" dropped); tags → user tags and item keywords; the release
    year in the title → a knowledge-graph fact ``(item, released_in, <year>)``.
    """
    d = ensure_files(root, download_missing=download_missing)
    movies, msrc = read_table(d / "movies.csv", "items")
    ratings, rsrc = read_table(d / "ratings.csv", "interactions")
    tags, tsrc = read_table(d / "tags.csv", "tags")
    genres = movies["genres"].where(movies["genres"] != "(no genres listed)", "")
    items = pd.DataFrame(
        {S.ITEM: movies["movieId"], S.TITLE: movies["title"], S.CATEGORIES: genres.str.replace("-", " ")}
    )
    years = movies["title"].str.extract(_YEAR, expand=False)
    triples = pd.DataFrame({S.ITEM: movies["movieId"], S.RELATION: "released_in", S.ENTITY: years})
    triples = triples[triples[S.ENTITY].notna()]
    interactions = ratings.rename(columns={"userId": S.USER, "movieId": S.ITEM})
    tg = tags.rename(columns={"userId": S.USER, "movieId": S.ITEM})[[S.USER, S.ITEM, S.TAG]]
    return from_frames(
        interactions[[S.USER, S.ITEM, S.TIMESTAMP, S.RATING]],
        items,
        triples=triples,
        tags=tg,
        sources={"interactions": rsrc, "items": msrc, "tags": tsrc},
        name=NAME,
    )
