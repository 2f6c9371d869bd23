from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from kgrec import loaders
from kgrec.errors import DatasetNotFoundError, DataValidationError
from kgrec.loaders import schema as S


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


ITEMS = "item,title,categories,keywords\ni1,Alpha,Drama|Comedy,space|robots\ni2,Beta,Drama,\ni3,Gamma,,sea\n"
INTER = "user,item,timestamp,rating\nu1,i1,10,4\nu1,i2,20,5\nu2,i2,15,3\nu2,i3,30,\n"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {"items": write(tmp_path / "items.csv", ITEMS), "interactions": write(tmp_path / "inter.csv", INTER)}


def test_movielens_loads_the_real_files(ml_root: Path) -> None:
    ds = loaders.movielens(ml_root, download_missing=False)
    c = ds.counts()
    assert c["users"] == 610 and c["items"] == 9742 and c["interactions"] == 100836
    assert c["categories"] == 19  # 20 genres minus "(no genres listed)"
    assert set(ds.interactions.columns) == set(S.INTERACTIONS_SCHEMA)
    toy = ds.items.set_index("item").loc["1", "title"]
    assert toy == "Toy Story (1995)"
    assert {"Animation", "Children"} <= set(ds.item_categories.query("item == '1'")["category"])
    assert ("1", "released_in", "1995") in set(map(tuple, ds.triples.to_numpy().tolist()))
    assert "pixar" in set(ds.item_keywords.query("item == '1'")["keyword"])


def test_movielens_missing_offline_says_where_to_put_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"ml-latest-small: missing movies.csv, ratings.csv, tags.csv; put the files"):
        loaders.movielens(tmp_path, download_missing=False)


def test_bring_your_own_csv(files: dict[str, Path]) -> None:
    ds = loaders.load_files(files["interactions"], files["items"])
    assert ds.counts()["interactions"] == 4
    assert ds.interactions[S.RATING].isna().sum() == 1
    assert set(ds.item_categories.itertuples(index=False, name=None)) == {("i1", "Comedy"), ("i1", "Drama"), ("i2", "Drama")}
    assert set(ds.item_keywords[S.KEYWORD]) == {"space", "robots", "sea"}


def test_parquet_equals_csv(files: dict[str, Path], tmp_path: Path) -> None:
    pd.read_csv(files["items"], dtype=str, keep_default_na=False).to_parquet(tmp_path / "items.parquet")
    pd.read_csv(files["interactions"]).to_parquet(tmp_path / "inter.parquet")
    a = loaders.load_files(files["interactions"], files["items"])
    b = loaders.load_files(tmp_path / "inter.parquet", tmp_path / "items.parquet")
    assert a.fingerprint() == b.fingerprint()


def test_missing_required_column(tmp_path: Path, files: dict[str, Path]) -> None:
    bad = write(tmp_path / "bad.csv", "user,product\nu1,i1\n")
    with pytest.raises(DataValidationError, match=r"bad.csv: missing required column 'item' for interactions; expected columns \['user', 'item'\]"):
        loaders.load_files(bad, files["items"])


def test_empty_file(tmp_path: Path, files: dict[str, Path]) -> None:
    bad = write(tmp_path / "empty.csv", "")
    with pytest.raises(DataValidationError, match=r"empty.csv: the file is empty; expected a header row"):
        loaders.load_files(bad, files["items"])
    header_only = write(tmp_path / "header.csv", "user,item\n")
    with pytest.raises(DataValidationError, match=r"header.csv: no data rows; expected at least one interactions row"):
        loaders.load_files(header_only, files["items"])


def test_bad_encoding_names_the_line(tmp_path: Path, files: dict[str, Path]) -> None:
    bad = write(tmp_path / "latin.csv", b"user,item,text\nu1,i1,ok\nu1,i2,caf\xe9\n")
    with pytest.raises(DataValidationError, match=r"latin.csv, line 3: bytes that are not UTF-8"):
        loaders.load_files(bad, files["items"])


def test_wrong_types_name_row_and_column(tmp_path: Path, files: dict[str, Path]) -> None:
    bad_ts = write(tmp_path / "ts.csv", "user,item,timestamp\nu1,i1,10\nu1,i2,yesterday\n")
    with pytest.raises(DataValidationError, match=r"ts.csv, line 3, column 'timestamp': 'yesterday' is not a timestamp; expected integer seconds"):
        loaders.load_files(bad_ts, files["items"])
    bad_rating = write(tmp_path / "r.csv", "user,item,rating\nu1,i1,five\n")
    with pytest.raises(DataValidationError, match=r"r.csv, line 2, column 'rating': 'five' is not a number"):
        loaders.load_files(bad_rating, files["items"])
    empty_id = write(tmp_path / "id.csv", "user,item\nu1,i1\n,i2\n")
    with pytest.raises(DataValidationError, match=r"id.csv, line 3, column 'user': empty user id"):
        loaders.load_files(empty_id, files["items"])


def test_iso_timestamps_are_accepted(tmp_path: Path, files: dict[str, Path]) -> None:
    f = write(tmp_path / "iso.csv", "user,item,timestamp\nu1,i1,2024-01-01T00:00:00Z\nu1,i2,2024-01-02\n")
    ds = loaders.load_files(f, files["items"])
    assert ds.interactions[S.TIMESTAMP].tolist() == [1704067200, 1704153600]


def test_unknown_items_error_or_warning(tmp_path: Path, files: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    f = write(tmp_path / "unk.csv", "user,item\nu1,i1\nu1,i9\nu2,i8\n")
    with pytest.raises(DataValidationError, match=r"unk.csv: 2 interactions row\(s\) name items absent from the items table, first: 'i9' \(.*line 3\)"):
        loaders.load_files(f, files["items"])
    ds = loaders.load_files(f, files["items"], allow_unknown_items=True)
    assert {"i8", "i9"} <= set(ds.items[S.ITEM])
    assert "2 item(s) named in interactions/tags/triples are absent" in caplog.text


def test_duplicates_kept_once_deterministically(tmp_path: Path, files: dict[str, Path]) -> None:
    f = write(tmp_path / "dup.csv", "user,item,timestamp,rating\nu1,i1,10,3\nu1,i1,30,5\nu1,i1,20,4\nu1,i1,10,3\n")
    ds = loaders.load_files(f, files["items"])
    assert len(ds.interactions) == 1
    row = ds.interactions.iloc[0]
    assert (row[S.TIMESTAMP], row[S.RATING], row[S.WEIGHT]) == (30, 5.0, 4.0)
    g = write(tmp_path / "dup2.csv", "user,item,timestamp,rating\nu1,i1,20,4\nu1,i1,10,3\nu1,i1,30,5\nu1,i1,10,3\n")
    assert loaders.load_files(g, files["items"]).fingerprint() == ds.fingerprint()


def test_conflicting_item_rows(tmp_path: Path, files: dict[str, Path]) -> None:
    items = write(tmp_path / "items2.csv", "item,title\ni1,Alpha\ni1,Other\n")
    with pytest.raises(DataValidationError, match=r"items2.csv, line 3, column 'item': item 'i1' is listed twice"):
        loaders.load_files(files["interactions"], items, allow_unknown_items=True)


def test_tags_and_triples(tmp_path: Path, files: dict[str, Path]) -> None:
    tags = write(tmp_path / "tags.csv", "user,item,tag\nu1,i1,  Space  Opera \n")
    triples = write(tmp_path / "kg.csv", "item,relation,entity\ni1,directed_by,Ridley Scott\ni2,directed_by,Ridley Scott\n")
    ds = loaders.load_files(files["interactions"], files["items"], triples, tags)
    assert ds.tags[S.TAG].tolist() == ["space opera"]
    assert "space opera" in set(ds.item_keywords.query("item == 'i1'")[S.KEYWORD])
    assert len(ds.triples) == 2 and ds.counts()["entities"] == 1


def test_synthetic_is_deterministic_and_planted(synth_frames) -> None:
    from kgrec.loaders import SyntheticConfig, generate_frames

    again = generate_frames(SyntheticConfig(users=160, items=240, communities=4, interactions_per_user=16, seed=1))
    pd.testing.assert_frame_equal(again["interactions"], synth_frames["interactions"])
    truth = synth_frames["communities"].set_index(["kind", "id"])["community"]
    inter = synth_frames["interactions"]
    same = [truth[("user", u)] == truth[("item", i)] for u, i in zip(inter["user"], inter["item"], strict=True)]
    assert sum(same) / len(same) > 0.8


def test_generate_writes_loadable_power_law_files(tmp_path: Path) -> None:
    from kgrec.cli import main

    out = tmp_path / "gen"
    assert main(["generate", "--users", "3000", "--items", "800", "--out", str(out), "--seed", "7"]) == 0
    files = {p.name for p in out.iterdir()}
    assert files == {"interactions.parquet", "items.parquet", "triples.parquet", "tags.parquet"}
    ds = loaders.load_files(out / "interactions.parquet", out / "items.parquet", out / "triples.parquet", out / "tags.parquet")
    c = ds.counts()
    assert c["users"] == 3000 and c["items"] == 800 and c["interactions"] > 3000 * 5
    per_user = ds.interactions.groupby("user").size()
    per_item = ds.interactions.groupby("item").size()
    assert per_user.max() > 5 * per_user.median()  # heavy-tailed activity
    assert per_item.max() > 10 * per_item.median()  # heavy-tailed popularity
    assert ds.interactions.groupby("user")["timestamp"].is_monotonic_increasing.all()
    again = tmp_path / "again"
    assert main(["generate", "--users", "3000", "--items", "800", "--out", str(again), "--seed", "7"]) == 0
    assert (again / "interactions.parquet").read_bytes() == (out / "interactions.parquet").read_bytes()
