"""The MovieLens 100K converter (benchmarks/datasets/ml100k.py) on tiny hand-made files in ml-100k's format."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.datasets import ml100k
from kgrec import loaders

GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip


def _flags(*on: str) -> str:
    return "|".join("1" if g in on else "0" for g in GENRES)


def _raw(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "u.genre").write_text("".join(f"{g}|{n}\n" for n, g in enumerate(GENRES)) + "\n")
    (raw / "u.item").write_bytes(
        (
            f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|"
            f"{_flags('Animation', 'Children' + chr(39) + 's', 'Comedy')}\n"
            f"2|Misérables, Les (1995)|01-Jan-1995||http://x|{_flags('Drama', 'Musical')}\n"
            f"3|Blade Runner|27-Jun-1982||http://x|{_flags('Film-Noir', 'Sci-Fi')}\n"  # no year in the title
            f"4|unknown|||http://x|{_flags('unknown')}\n"  # as ml-100k's movie 267
        ).encode("latin-1")
    )
    (raw / "u.user").write_text(
        "1|24|M|technician|85711\n2|53|F|other|02139\n3|23|M|programmer|T8H1N\n4|33|F|programmer|55105\n"
    )
    # user, item, rating, time: user 1 rated two movies in one second (a tie); user 4 rated nothing (cold)
    (raw / "u.data").write_text(
        "1\t2\t3\t881250949\n1\t1\t5\t881250949\n2\t1\t4\t891717742\n2\t3\t1\t891717000\n3\t4\t2\t878887116\n"
    )
    return raw


def test_ml100k_tables_latin1_titles_genres_years_and_users(tmp_path: Path) -> None:
    out = tmp_path / "ml-100k"
    t = ml100k.convert(_raw(tmp_path), out, check=False)
    inter = t["interactions"]
    assert inter.values.tolist() == [
        ["1", "1", 881250949, 5],  # sorted by (user, time, item numbers); the tie kept as two rows
        ["1", "2", 881250949, 3],
        ["2", "3", 891717000, 1],
        ["2", "1", 891717742, 4],
        ["3", "4", 878887116, 2],
    ]
    items = t["items"].set_index("item")
    assert items.loc["2", "title"] == "Misérables, Les (1995)"  # latin-1 in, text out
    assert items["categories"].to_dict() == {
        "1": "Animation|Children's|Comedy",
        "2": "Drama|Musical",
        "3": "Film Noir|Sci Fi",  # spelt as the MovieLens latest-small loader spells them
        "4": "",  # the genre "unknown" is dropped
    }
    assert t["triples"].values.tolist() == [["1", "released_in", "1995"], ["2", "released_in", "1995"],
                                            ["3", "released_in", "1982"]]  # fmt: skip
    assert list(t["users"].columns) == ["user", "age:number", "gender:category", "occupation:category",
                                        "region:category"]  # fmt: skip
    assert t["users"]["region:category"].tolist() == ["zip 8xxxx", "zip 0xxxx", "Canada", "zip 5xxxx"]
    # the files are UTF-8 and pass kgrec's loader, users file included (user 4 has no interactions)
    assert "Misérables" in (out / "items.csv").read_text(encoding="utf-8")
    ds = loaders.load_files(out / "interactions.csv", out / "items.csv", out / "triples.csv", users=out / "users.csv")
    assert ds.name == "ml-100k" and ds.counts()["users"] == 4 and len(ds.interactions) == 5
    got = {(u, a): v for u, a, v in ds.user_attributes.values.tolist()}
    assert got[("4", "occupation")] == "programmer" and got[("3", "region")] == "Canada" and got[("2", "gender")] == "F"
    assert " to " in got[("1", "age")]  # numeric: an age band
    assert set(ds.user_attributes["attribute"]) == {"age", "gender", "occupation", "region"}


def test_ml100k_refuses_a_damaged_or_incomplete_copy(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    with pytest.raises(ValueError, match=r"u\.data: 5 lines, expected 100,000 \(the GroupLens ml-100k file\)"):
        ml100k.convert(raw, tmp_path / "out")
    (raw / "u.data").write_text("1\t1\t5\t881250949\n" * 100_000)  # the right length, not the right bytes
    with pytest.raises(ValueError, match=r"u\.data: sha256 [0-9a-f]{64}, expected 06416e59"):
        ml100k.convert(raw, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written
    (raw / "u.genre").unlink()
    with pytest.raises(FileNotFoundError, match=r"u\.genre: missing"):
        ml100k.convert(raw, tmp_path / "out", check=False)


def test_ml100k_region_of_a_zip_code() -> None:
    got = [ml100k.region(z) for z in ("02139", "94043", "V3N4P", "123")]
    assert got == ["zip 0xxxx", "zip 9xxxx", "Canada", "other"]
