"""Input validation found missing by trying to break kgrec (issue 19, defects 2, 3, 7, 12, 13 and part of 14).

Every case loads a small generated file from ``tmp_path`` and pins the message: the file, the line (CSV: the
physical line, counting the header as line 1) or row (Parquet: from 1), the column and what was expected.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kgrec import loaders
from kgrec.errors import DataValidationError
from kgrec.loaders import schema as S

ITEMS = "item,title\ni1,Alpha\ni2,Beta\n"
RANGE = r"expected a timestamp from 0 to 253402300799 seconds since 1970"


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def parquet(path: Path, **columns: pa.Array | list) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


@pytest.fixture
def items(tmp_path: Path) -> Path:
    return write(tmp_path / "items.csv", ITEMS)


# ---- 2. out-of-range values are refused, never wrapped around


@pytest.mark.parametrize("value", ["99999999999999999999", "1e30", "inf", "-inf", "-5", "253402300800"])
def test_out_of_range_csv_timestamps_are_refused(tmp_path: Path, items: Path, value: str) -> None:
    f = write(tmp_path / "ts.csv", f"user,item,timestamp\nu1,i1,10\nu1,i2,{value}\n")
    with pytest.raises(DataValidationError, match=rf"ts.csv, line 3, column 'timestamp': '{value}' is out of range; {RANGE}"):
        loaders.load_files(f, items)


@pytest.mark.parametrize(
    ("array", "shown"),
    [
        (pa.array([10.0, 1e30]), r"1e\+30"),
        (pa.array([10, 2**63 + 5], pa.uint64()), str(2**63 + 5)),
        (pa.array([10, -1], pa.int64()), "-1"),
        (pa.array([10.0, float("inf")]), "inf"),
    ],
)
def test_out_of_range_parquet_timestamps_are_refused(tmp_path: Path, items: Path, array: pa.Array, shown: str) -> None:
    f = parquet(tmp_path / "ts.parquet", user=["u1", "u1"], item=["i1", "i2"], timestamp=array)
    with pytest.raises(DataValidationError, match=rf"ts.parquet, row 2, column 'timestamp': '{shown}' is out of range; {RANGE}"):
        loaders.load_files(f, items)


def test_parquet_nan_timestamp_is_an_empty_timestamp(tmp_path: Path, items: Path) -> None:
    f = parquet(tmp_path / "ts.parquet", user=["u1", "u1"], item=["i1", "i2"], timestamp=[10.0, float("nan")])
    with pytest.raises(DataValidationError, match=r"ts.parquet, row 2, column 'timestamp': empty timestamp; expected"):
        loaders.load_files(f, items)


def test_timestamp_range_edges_are_kept(tmp_path: Path, items: Path) -> None:
    f = write(tmp_path / "ts.csv", "user,item,timestamp\nu1,i1,0\nu1,i2,9999-12-31T23:59:59Z\nu2,i1,253402300799\n")
    ds = loaders.load_files(f, items)
    assert sorted(ds.interactions[S.TIMESTAMP].tolist()) == [0, S.TIMESTAMP_MAX, S.TIMESTAMP_MAX]
    g = parquet(tmp_path / "ts.parquet", user=["u1", "u2"], item=["i1", "i2"],
                timestamp=pa.array([0, S.TIMESTAMP_MAX], pa.uint64()))
    assert sorted(loaders.load_files(g, items).interactions[S.TIMESTAMP].tolist()) == [0, S.TIMESTAMP_MAX]


def test_float_user_id_too_large_for_an_exact_integer_is_refused(tmp_path: Path, items: Path) -> None:
    f = parquet(tmp_path / "u.parquet", user=[1.0, 1e20], item=["i1", "i2"])
    with pytest.raises(DataValidationError, match=r"u.parquet, row 2, column 'user': id 1e\+20 is a float too large to stand for one integer exactly; expected a string or integer id"):
        loaders.load_files(f, items)


def test_integral_float_ids_become_their_integer_text(tmp_path: Path, items: Path) -> None:
    f = parquet(tmp_path / "u.parquet", user=[1.0, 2.0**53], item=["i1", "i2"])
    ds = loaders.load_files(f, items)
    assert set(ds.interactions[S.USER]) == {"1", str(2**53)}
    g = parquet(tmp_path / "frac.parquet", user=[1.0, 2.5], item=["i1", "i2"])
    with pytest.raises(DataValidationError, match=r"frac.parquet, row 2, column 'user': id 2.5 is a fractional number"):
        loaders.load_files(g, items)
    h = parquet(tmp_path / "inf.parquet", user=[1.0, float("-inf")], item=["i1", "i2"])
    with pytest.raises(DataValidationError, match=r"inf.parquet, row 2, column 'user': id -inf is not a finite number; expected a string or integer id"):
        loaders.load_files(h, items)


def test_infinite_rating_is_refused(tmp_path: Path, items: Path) -> None:
    f = write(tmp_path / "r.csv", "user,item,rating\nu1,i1,4\nu1,i2,inf\n")
    with pytest.raises(DataValidationError, match=r"r.csv, line 3, column 'rating': 'inf' is not a finite number; expected a numeric rating"):
        loaders.load_files(f, items)


# ---- 3. wrong column types: list columns are lists, containers elsewhere are refused


def test_parquet_list_columns_are_lists_of_values(tmp_path: Path) -> None:
    it = parquet(
        tmp_path / "items.parquet",
        item=["i1", "i2", "i3"],
        title=["Alpha", "Beta", "Gamma"],
        categories=pa.array([["Drama", " Comedy "], [], None], pa.list_(pa.string())),
        keywords=pa.array([["Space  Opera", "robots"], ["sea"], ["", None]], pa.list_(pa.string())),
    )
    inter = write(tmp_path / "inter.csv", "user,item\nu1,i1\nu1,i2\n")
    ds = loaders.load_files(inter, it)
    assert set(ds.item_categories.itertuples(index=False, name=None)) == {("i1", "Comedy"), ("i1", "Drama")}
    assert set(ds.item_keywords.itertuples(index=False, name=None)) == {("i1", "space opera"), ("i1", "robots"), ("i2", "sea")}
    # the same data as |-separated text give the same data set
    same = write(tmp_path / "items.csv", "item,title,categories,keywords\ni1,Alpha,Drama|Comedy,Space  Opera|robots\ni2,Beta,,sea\ni3,Gamma,,\n")
    assert loaders.load_files(inter, same).fingerprint() == ds.fingerprint()


def test_frame_cells_may_mix_lists_and_text(tmp_path: Path) -> None:
    inter = pd.DataFrame({"user": ["u1"], "item": ["i1"]})
    items = pd.DataFrame({"item": ["i1", "i2", "i3"], "categories": [["Drama", "Comedy"], "Drama|Horror", None]})
    ds = loaders.from_frames(inter, items)
    assert set(ds.item_categories.itertuples(index=False, name=None)) == {
        ("i1", "Comedy"), ("i1", "Drama"), ("i2", "Drama"), ("i2", "Horror")
    }
    assert not any("[" in c for c in ds.item_categories[S.CATEGORY])


@pytest.mark.parametrize(
    ("column", "array", "message"),
    [
        ("title", pa.array([{"x": 1}, {"x": 2}]), r"row 1, column 'title': a struct/map value \{'x': 1\} in the items table; expected text"),
        ("title", pa.array([["a", "b"], ["c"]]), r"row 1, column 'title': a list value \['a', 'b'\] in the items table; expected text"),
        ("description", pa.array([None, ["c"]]), r"row 2, column 'description': a list value \['c'\] in the items table; expected text"),
        ("categories", pa.array([[["ok"]], [["nested"]]]), r"row 1, column 'categories': a list value \['ok'\] in the items table; expected a list of strings"),
        ("keywords", pa.array([[], [{"k": "v"}]]), r"row 2, column 'keywords': a struct/map value \{'k': 'v'\} in the items table; expected a list of strings"),
        ("categories", pa.array([{"x": "a"}, None]), r"row 1, column 'categories': a struct/map value \{'x': 'a'\}; expected text with values separated by '\|' or a list of strings"),
    ],
)
def test_containers_in_other_columns_are_refused(tmp_path: Path, column: str, array: pa.Array, message: str) -> None:
    it = parquet(tmp_path / "items.parquet", item=["i1", "i2"], **{column: array})
    inter = write(tmp_path / "inter.csv", "user,item\nu1,i1\n")
    with pytest.raises(DataValidationError, match=rf"items.parquet, {message}"):
        loaders.load_files(inter, it)


def test_list_user_ids_are_refused(tmp_path: Path, items: Path) -> None:
    f = parquet(tmp_path / "inter.parquet", user=pa.array([["u1"], ["u2"]]), item=["i1", "i2"])
    with pytest.raises(DataValidationError, match=r"inter.parquet, row 1, column 'user': a list value \['u1'\] in the interactions table; expected a user id"):
        loaders.load_files(f, items)


# ---- 7. id length: one limit for every id column, before any store sees the data

LONG = "x" * (S.MAX_ID_BYTES + 1)


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("interactions", "user"), ("interactions", "item"), ("items", "item"), ("items", "categories"),
        ("items", "keywords"), ("triples", "item"), ("triples", "relation"), ("triples", "entity"),
        ("tags", "user"), ("tags", "item"), ("tags", "tag"),
    ],
)
def test_long_ids_are_refused_in_every_id_column(tmp_path: Path, table: str, column: str) -> None:
    rows = {
        "interactions": {"user": ["u1", "u2"], "item": ["i1", "i2"]},
        "items": {"item": ["i1", "i2"], "title": ["A", "B"], "categories": ["Drama", "Comedy"], "keywords": ["k", "k"]},
        "triples": {"item": ["i1", "i2"], "relation": ["by", "by"], "entity": ["e", "e"]},
        "tags": {"user": ["u1", "u2"], "item": ["i1", "i2"], "tag": ["t", "t"]},
    }
    rows[table][column][1] = LONG if column not in ("categories", "keywords") else f"ok|{LONG}"
    paths = {}
    for name, data in rows.items():
        paths[name] = tmp_path / f"{name}.csv"
        pd.DataFrame(data).to_csv(paths[name], index=False)
    with pytest.raises(DataValidationError, match=rf"{table}.csv, line 3, column '{column}': {column} 'x+… is {S.MAX_ID_BYTES + 1:,} UTF-8 bytes long; expected ids of at most {S.MAX_ID_BYTES:,} bytes"):
        loaders.load_files(paths["interactions"], paths["items"], paths["triples"], paths["tags"], allow_unknown_items=True)


def test_id_limit_counts_utf8_bytes(tmp_path: Path, items: Path) -> None:
    exact = "€" * (S.MAX_ID_BYTES // 3) + "x" * (S.MAX_ID_BYTES % 3)  # 1024 bytes in 343 characters
    assert len(exact.encode()) == S.MAX_ID_BYTES
    ok = write(tmp_path / "ok.csv", f"user,item\n{exact},i1\n")
    assert loaders.load_files(ok, items).interactions[S.USER].tolist() == [exact]
    over = write(tmp_path / "over.csv", f"user,item\nu1,i1\n{exact}€,i2\n")
    with pytest.raises(DataValidationError, match=rf"over.csv, line 3, column 'user': user '€+… is {S.MAX_ID_BYTES + 3:,} UTF-8 bytes long"):
        loaders.load_files(over, items)


NEO4J_URI = os.environ.get("KGREC_TEST_NEO4J_URI", "bolt://127.0.0.1:7687")


@pytest.mark.neo4j
def test_neo4j_ingest_of_a_long_entity_id_fails_before_any_write(tmp_path: Path, neo4j_left_empty, capsys) -> None:
    """The issue's case: a 10,000-character id only in the triples file left users and items half-written."""
    import kgrec
    from kgrec.cli import main

    with kgrec.open_store(NEO4J_URI) as st:
        st.wipe()
    write(tmp_path / "items.csv", ITEMS)
    write(tmp_path / "inter.csv", "user,item,timestamp\nu1,i1,10\nu2,i2,20\n")
    write(tmp_path / "kg.csv", "item,relation,entity\ni1,directed_by,Ridley Scott\n")
    base = ["ingest", "--store", NEO4J_URI, "--interactions", str(tmp_path / "inter.csv"), "--items", str(tmp_path / "items.csv")]
    assert main([*base, "--triples", str(tmp_path / "kg.csv")]) == 0
    with kgrec.open_store(NEO4J_URI) as st:
        before = (st.fingerprint(), st.counts(), st.dataset().fingerprint())
        nodes = st.cypher("MATCH (n) RETURN count(n) AS n")["n"].iloc[0]
    # new users and items, and a triple whose entity is 10,000 characters long
    write(tmp_path / "items2.csv", ITEMS + "i3,Gamma\n")
    write(tmp_path / "inter2.csv", "user,item,timestamp\nu3,i3,30\nu4,i1,40\n")
    write(tmp_path / "kg2.csv", f"item,relation,entity\ni1,directed_by,Ridley Scott\ni3,directed_by,{'y' * 10_000}\n")
    capsys.readouterr()
    args = ["ingest", "--store", NEO4J_URI, "--interactions", str(tmp_path / "inter2.csv"),
            "--items", str(tmp_path / "items2.csv"), "--triples", str(tmp_path / "kg2.csv")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "kg2.csv, line 3, column 'entity': entity 'yyyy" in err and f"is 10,000 UTF-8 bytes long; expected ids of at most {S.MAX_ID_BYTES:,} bytes" in err
    with pytest.raises(DataValidationError, match=r"kg2.csv, line 3, column 'entity'"):
        loaders.load_files(tmp_path / "inter2.csv", tmp_path / "items2.csv", tmp_path / "kg2.csv")
    with kgrec.open_store(NEO4J_URI) as st:
        assert (st.fingerprint(), st.counts(), st.dataset().fingerprint()) == before
        assert st.cypher("MATCH (n) RETURN count(n) AS n")["n"].iloc[0] == nodes
        assert not st.has_user("u3")


# ---- 12. field size limits at ingest


def test_title_over_the_limit_is_an_error(tmp_path: Path) -> None:
    inter = write(tmp_path / "inter.csv", "user,item\nu1,i1\n")
    ok = write(tmp_path / "ok.csv", f"item,title\ni1,{'t' * S.MAX_TITLE_CHARS}\n")
    assert loaders.load_files(inter, ok).items[S.TITLE].str.len().tolist() == [S.MAX_TITLE_CHARS]
    big = write(tmp_path / "big.csv", f"item,title\ni1,A\ni2,{'t' * (5 * 2**20)}\n")
    with pytest.raises(DataValidationError, match=rf"big.csv, line 3, column 'title': title of 5,242,880 characters \(starting 't+…\); expected at most {S.MAX_TITLE_CHARS:,} characters"):
        loaders.load_files(inter, big)


def test_description_and_text_over_the_limit_are_cut_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    long_d = "d" * (S.MAX_DESCRIPTION_CHARS + 500)
    long_t = "t" * (S.MAX_TEXT_CHARS + 1)
    it = write(tmp_path / "items.csv", f"item,title,description\ni1,A,short\ni2,B,{long_d}\n")
    inter = write(tmp_path / "inter.csv", f"user,item,text\nu1,i1,{long_t}\nu1,i2,fine\n")
    with caplog.at_level(logging.WARNING, logger="kgrec.loaders.tables"):
        ds = loaders.load_files(inter, it)
    desc = ds.items.set_index(S.ITEM)[S.DESCRIPTION]
    assert desc["i1"] == "short" and desc["i2"] == "d" * S.MAX_DESCRIPTION_CHARS
    text = ds.interactions.set_index(S.ITEM)[S.TEXT]
    assert text["i1"] == "t" * S.MAX_TEXT_CHARS and text["i2"] == "fine"
    assert f"items.csv: 1 description value(s) longer than {S.MAX_DESCRIPTION_CHARS} characters cut to {S.MAX_DESCRIPTION_CHARS}, the first at" in caplog.text
    assert "items.csv, line 3, column 'description'" in caplog.text
    assert f"inter.csv: 1 text value(s) longer than {S.MAX_TEXT_CHARS} characters cut" in caplog.text


def test_too_many_categories_or_keywords_in_one_item(tmp_path: Path) -> None:
    inter = write(tmp_path / "inter.csv", "user,item\nu1,i1\n")
    n = S.MAX_VALUES_PER_ITEM
    ok = write(tmp_path / "ok.csv", "item,categories\ni1," + "|".join(f"c{j}" for j in range(n)) + "\n")
    assert len(loaders.load_files(inter, ok).item_categories) == n
    many = write(tmp_path / "many.csv", "item,keywords\ni1,a\ni2," + "|".join(f"k{j}" for j in range(n + 1)) + "\n")
    with pytest.raises(DataValidationError, match=rf"many.csv, line 3, column 'keywords': {n + 1:,} keywords in one item; expected at most {n:,} per item"):
        loaders.load_files(inter, many)
    lists = parquet(tmp_path / "many.parquet", item=["i1"], categories=pa.array([[f"c{j}" for j in range(n + 1)]]))
    with pytest.raises(DataValidationError, match=rf"many.parquet, row 1, column 'categories': {n + 1:,} categories in one item"):
        loaders.load_files(inter, lists)


# ---- 13. messages say where (file, line or row, column) and what was expected


def test_iso_dates_after_2262_are_read(tmp_path: Path, items: Path) -> None:
    f = write(tmp_path / "iso.csv", "user,item,timestamp\nu1,i1,2300-01-01\nu1,i2,2024-01-01T00:00:00.123456789Z\n")
    ds = loaders.load_files(f, items)
    assert sorted(ds.interactions[S.TIMESTAMP].tolist()) == [1704067200, 10413792000]


def test_iso_dates_outside_the_range_or_format_name_the_line(tmp_path: Path, items: Path) -> None:
    early = write(tmp_path / "early.csv", "user,item,timestamp\nu1,i1,2024-01-01\nu1,i2,1960-05-01\n")
    with pytest.raises(DataValidationError, match=rf"early.csv, line 3, column 'timestamp': '1960-05-01' is out of range; {RANGE}"):
        loaders.load_files(early, items)
    late = write(tmp_path / "late.csv", "user,item,timestamp\nu1,i1,2024-01-01\nu1,i2,10000-01-01\n")
    with pytest.raises(DataValidationError, match=r"late.csv, line 3, column 'timestamp': '10000-01-01' is not a timestamp; expected integer seconds since 1970 or an ISO-8601 date"):
        loaders.load_files(late, items)
    nan = write(tmp_path / "nan.csv", "user,item,timestamp\nu1,i1,10\nu1,i2,NaT\n")
    with pytest.raises(DataValidationError, match=r"nan.csv, line 3, column 'timestamp': 'NaT' is not a timestamp"):
        loaders.load_files(nan, items)


def test_parquet_binary_title_not_utf8_names_row_and_column(tmp_path: Path) -> None:
    it = parquet(tmp_path / "items.parquet", item=["i1", "i2"], title=pa.array([b"Alpha", b"caf\xe9"], pa.binary()))
    inter = write(tmp_path / "inter.csv", "user,item\nu1,i1\n")
    with pytest.raises(DataValidationError, match=r"items.parquet, row 2, column 'title': bytes that are not UTF-8 \(at byte 3 of the value b'caf\\xe9'\); expected text in UTF-8"):
        loaders.load_files(inter, it)
    good = parquet(tmp_path / "good.parquet", item=["i1"], title=pa.array(["Café".encode()], pa.binary()))
    assert loaders.load_files(inter, good).items[S.TITLE].tolist() == ["Café"]


def test_parquet_binary_user_id_not_utf8_names_row_and_column(tmp_path: Path, items: Path) -> None:
    f = parquet(tmp_path / "inter.parquet", user=pa.array([b"u1", b"\xff"], pa.binary()), item=["i1", "i2"])
    with pytest.raises(DataValidationError, match=r"inter.parquet, row 2, column 'user': bytes that are not UTF-8 \(at byte 0 of the value b'\\xff'\); expected a user id in UTF-8"):
        loaders.load_files(f, items)


@pytest.mark.parametrize("table", ["interactions", "items", "tags", "triples"])
def test_non_utf8_csv_names_the_file_and_line(tmp_path: Path, table: str) -> None:
    good = {
        "interactions": "user,item\nu1,i1\n",
        "items": ITEMS,
        "tags": "user,item,tag\nu1,i1,ok\n",
        "triples": "item,relation,entity\ni1,by,ok\n",
    }
    paths = {name: write(tmp_path / f"{name}.csv", text) for name, text in good.items()}
    write(paths[table], good[table].encode() + good[table].splitlines()[1].encode() + b"caf\xe9\n")
    line = len(good[table].splitlines()) + 1
    with pytest.raises(DataValidationError, match=rf"{table}.csv, line {line}: bytes that are not UTF-8 \(at byte \d+\); expected a UTF-8 encoded CSV file"):
        loaders.load_files(paths["interactions"], paths["items"], paths["triples"], paths["tags"])


def test_line_numbers_count_quoted_line_breaks_and_blank_lines(tmp_path: Path) -> None:
    inter = write(tmp_path / "inter.csv", "user,item\nu1,i1\n")
    # physical lines: 1 header, 2-4 one quoted title over three lines, 5 i2, 6 blank, 7 i3, 8 i2 again
    it = write(tmp_path / "items.csv", 'item,title\ni1,"a\nb\nc"\ni2,B\n\ni3,C\ni2,D\n')
    with pytest.raises(DataValidationError, match=r"items.csv, line 8, column 'item': item 'i2' is listed twice with different title/description"):
        loaders.load_files(inter, it)
    crlf = write(tmp_path / "crlf.csv", b'user,item,timestamp\r\nu1,i1,"1\r\n"\r\nu1,i2,1e30\r\n')
    items = write(tmp_path / "ok.csv", ITEMS)
    with pytest.raises(DataValidationError, match=r"crlf.csv, line 4, column 'timestamp': '1e30' is out of range"):
        loaders.load_files(crlf, items)
    unknown = write(tmp_path / "unk.csv", 'user,item,text\nu1,i1,"two\nlines"\nu1,i9,x\n')
    with pytest.raises(DataValidationError, match=r"unk.csv: 1 interactions row\(s\) name items absent from the items table, first: 'i9' \(.*unk.csv, line 4\)"):
        loaders.load_files(unknown, items)


# ---- 14 (part). ids are stripped of surrounding white space (documented in docs/data-format.md)


def test_ids_are_stripped_of_surrounding_white_space(tmp_path: Path) -> None:
    it = write(tmp_path / "items.csv", 'item,title\n" i1 ",Alpha\ni 2,Beta\n')
    inter = write(tmp_path / "inter.csv", 'user,item,timestamp\n u1,i1,10\n"u1\t",i1 ,20\n\u00a0u2,i 2,30\n')
    ds = loaders.load_files(inter, it)
    assert set(ds.items[S.ITEM]) == {"i1", "i 2"}  # inner spaces are kept
    assert ds.interactions[[S.USER, S.ITEM, S.WEIGHT]].to_numpy().tolist() == [["u1", "i1", 2.0], ["u2", "i 2", 1.0]]
    frame = loaders.from_frames(pd.DataFrame({"user": ["u1 "], "item": [" i1"]}), pd.DataFrame({"item": ["i1"]}))
    assert frame.interactions[[S.USER, S.ITEM]].to_numpy().tolist() == [["u1", "i1"]]
    blank = write(tmp_path / "blank.csv", "user,item\nu1,i1\n   ,i1\n")
    with pytest.raises(DataValidationError, match=r"blank.csv, line 3, column 'user': empty user id"):
        loaders.load_files(blank, it)



def test_read_id_file_names_the_file_and_line(tmp_path: Path) -> None:
    ids = write(tmp_path / "users.txt", " u1 \n\nu 2\n")
    assert loaders.read_id_file(ids, "user") == ["u1", "u 2"]
    bad = write(tmp_path / "bad.txt", b"u1\nu\xe92\n")
    with pytest.raises(DataValidationError, match=r"bad.txt, line 2: bytes that are not UTF-8 \(at byte 4\); expected one user id per line in a UTF-8 encoded file"):
        loaders.read_id_file(bad, "user")


def test_export_users_file_not_utf8_names_the_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``kgrec export --users`` with a Latin-1 file said only "'utf-8' codec can't decode …"."""
    from kgrec.cli import main

    bad = write(tmp_path / "users.txt", b"u1\nJos\xe9\n")
    rc = main(["export", "--out", str(tmp_path / "recs.csv"), "--store", str(tmp_path / "store"), "--users", str(bad)])
    assert rc == 2
    assert "users.txt, line 2: bytes that are not UTF-8 (at byte 6); expected one user id per line" in capsys.readouterr().err


def test_arrow_backed_frame_columns_are_checked_like_parquet(tmp_path: Path) -> None:
    inter = pd.DataFrame({"user": ["u1"], "item": ["i1"]})
    cats = pd.Series([["Drama", "Comedy"]], dtype=pd.ArrowDtype(pa.list_(pa.string())))
    ds = loaders.from_frames(inter, pd.DataFrame({"item": ["i1"], "categories": cats}))
    assert sorted(ds.item_categories[S.CATEGORY]) == ["Comedy", "Drama"]
    title = pd.Series([{"x": 1}], dtype=pd.ArrowDtype(pa.struct([("x", pa.int64())])))
    with pytest.raises(DataValidationError, match=r"<items frame>, row 1, column 'title': a struct/map value \{'x': 1\}"):
        loaders.from_frames(inter, pd.DataFrame({"item": ["i1"], "title": title}))


def test_check_dataset_catches_a_hand_built_dataset(synth_dataset) -> None:
    """For stores: a ``Dataset`` built without a loader gets the same limits before any write."""
    loaders.check_dataset(synth_dataset)  # every loader's output passes
    items = synth_dataset.items.copy()
    items.loc[3, S.ITEM] = "z" * (S.MAX_ID_BYTES + 1)
    bad = S.Dataset(interactions=synth_dataset.interactions, items=items)
    with pytest.raises(DataValidationError, match=rf"<dataset table 'items'>, row 4, column 'item': item 'z+… is {S.MAX_ID_BYTES + 1:,} UTF-8 bytes long"):
        loaders.check_dataset(bad)
    inter = synth_dataset.interactions.copy()
    inter.loc[5, S.TIMESTAMP] = -1
    with pytest.raises(DataValidationError, match=rf"<dataset table 'interactions'>, row 6, column 'timestamp': '-1' is out of range; {RANGE}"):
        loaders.check_dataset(S.Dataset(interactions=inter, items=synth_dataset.items))


def test_malformed_csv_names_the_physical_line(tmp_path: Path) -> None:
    """pandas numbers the records ("line 4"); after a quoted line break the physical line is 6."""
    inter = write(tmp_path / "inter.csv", "user,item\nu1,i1\n")
    it = write(tmp_path / "items.csv", 'item,title\ni1,"a\nb\nc"\ni2,B\ni3,C,extra\n')
    with pytest.raises(DataValidationError, match=r"items.csv, line 6: 3 fields where the header has 2; expected one row per line with a fixed number of fields"):
        loaders.load_files(inter, it)
