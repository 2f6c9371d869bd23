"""The CLI surface (issue 18 points 4 and 9): start-up without the heavy stack, one vocabulary, one error style."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import kgrec
from kgrec.cli import main

HEAVY = ("torch", "transformers", "torch_geometric", "pandas")


def run(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def _imported_by(*argv: str) -> set[str]:
    """Top-level modules a fresh interpreter has imported after running ``kgrec ARGV``."""
    code = ("import sys; from kgrec.cli import main; rc = main(sys.argv[1:]); "
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    p = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    return set(p.stdout.split()[-1000:])


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["recommend", "--help"], ["train", "--help"],
                                  ["recommend", "--k", "x", "-u", "a"], ["nope"], ["explain", "-u", "a"]])
def test_help_version_and_usage_errors_do_not_import_the_heavy_stack(argv: list[str]) -> None:
    loaded = _imported_by(*argv)
    assert "kgrec" in loaded and "typer" in loaded
    assert not loaded & set(HEAVY), f"kgrec {' '.join(argv)} imported {sorted(loaded & set(HEAVY))}"


def test_version(capsys) -> None:
    rc, out, _ = run(capsys, "--version")
    assert rc == 0 and out.strip() == f"kgrec {kgrec.__version__}"


def test_help_shows_defaults_and_no_bool_placeholder(capsys) -> None:
    from kgrec.fusion.config import RecommenderConfig

    cfg = RecommenderConfig()
    rc, out, _ = run(capsys, "train", "--help")
    assert rc == 0
    flat = " ".join(out.split())
    assert f"maximum epochs [default: {cfg.train.epochs}" in flat
    assert f"vector size [default: {cfg.model.dim}" in flat
    assert f"random seed [default: {cfg.train.seed}" in flat
    for command in ("train", "recommend", "export", "ingest", "explain", "query", "generate", "demo", "serve"):
        rc, out, _ = run(capsys, command, "--help")
        assert rc == 0 and "<bool>" not in out and "--help" in out, command


@pytest.mark.parametrize(("argv", "message"), [
    (["recommend", "-u", "a", "--k", "x"], "kgrec: error: Invalid value for '--k'"),
    (["recommend", "-u", "a", "--format", "xml"], "kgrec: error: Invalid value: --format 'xml': expected one of text, csv, json, jsonl"),
    (["explain", "-u", "a"], "kgrec: error: Missing option '--item'"),
    (["generate", "--out", "x", "--bogus"], "kgrec: error: No such option: --bogus"),
    (["nope"], "kgrec: error: No such command 'nope'"),
    (["ingest", "--store", "s"], "kgrec: error: Invalid value: give exactly one of --interactions/--items-file"),
])
def test_one_error_style_for_usage_errors(capsys, argv: list[str], message: str) -> None:
    rc, out, err = run(capsys, *argv)
    assert rc == 2 and out == ""
    assert err.startswith(message) and "--help')" in err
    assert "Usage:" not in err and "Error:" not in err and len(err.strip().splitlines()) == 1


def test_new_spellings_and_old_ones_with_a_deprecation_note(tmp_path: Path, capsys) -> None:
    rc, out, err = run(capsys, "generate", "--n-users", "40", "--n-items", "30", "--out", str(tmp_path / "new"), "--seed", "3")
    assert rc == 0 and "wrote 40 users, 30 items" in out and "deprecated" not in err
    rc, out, err = run(capsys, "generate", "--users", "40", "--items=30", "--out", str(tmp_path / "old"), "--seed", "3")
    assert rc == 0 and "wrote 40 users, 30 items" in out
    assert "kgrec: warning: generate --users is deprecated; use --n-users" in err
    assert "kgrec: warning: generate --items is deprecated; use --n-items" in err
    for name in ("interactions", "items"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "new" / f"{name}.parquet"),
                                      pd.read_parquet(tmp_path / "old" / f"{name}.parquet"))
    # ingest --items (a file) is now --items-file; both work, the old one with a note
    d = tmp_path / "new"
    for i, flag in enumerate(("--items-file", "--items")):
        rc, out, err = run(capsys, "ingest", "--store", str(tmp_path / f"store{i}"), "--interactions",
                           str(d / "interactions.parquet"), flag, str(d / "items.parquet"))
        assert rc == 0 and out.startswith("ingested: 40 users, 30 items"), err
        assert ("deprecated; use --items-file" in err) == (flag == "--items")


def test_renamed_options_are_listed_in_help(capsys) -> None:
    from kgrec.cli.app import RENAMED_OPTIONS

    for command, renamed in RENAMED_OPTIONS.items():
        rc, out, _ = run(capsys, command, "--help")
        assert rc == 0
        for old, new in renamed.items():
            assert new in out and f"(was {old})" in " ".join(out.split()), (command, new)



# --------------------------------------------------------------------------- user data is never markup (issue 19.8)
MARKUP_USER = "U7[/x]"
MARKUP_TITLES = ("[bold]Heat[/bold]", "[link=https://evil.example]Click[/link]", "[/x]", "[red]R[/]")


@pytest.fixture(scope="module")
def markup_store(tmp_path_factory, synth_frames) -> tuple[Path, str]:
    """A trained embedded store at a path holding ``[/x]``, with a user id and every item title holding markup."""
    d = tmp_path_factory.mktemp("markup")
    inter = synth_frames["interactions"].copy()
    inter["user"] = inter["user"].replace({"u7": MARKUP_USER})
    items = synth_frames["items"].copy()
    items["title"] = [MARKUP_TITLES[n % len(MARKUP_TITLES)] + f" {n}" for n in range(len(items))]
    inter.to_csv(d / "interactions.csv", index=False)
    items.to_csv(d / "items.csv", index=False)
    store = d / "mk[/x]"
    assert main(["ingest", "--store", str(store), "--interactions", str(d / "interactions.csv"),
                 "--items-file", str(d / "items.csv")]) == 0
    assert main(["train", "--store", str(store), "--epochs", "2", "--dim", "8"]) == 0
    return store, items.set_index("item")["title"].to_dict()


def test_ingest_prints_a_store_path_holding_markup(tmp_path: Path, capsys) -> None:
    store = tmp_path / "mk[/x]"
    rc, out, err = run(capsys, "ingest", "--store", str(store), "--synthetic")
    assert rc == 0, err
    assert f"-> {store}" in out and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["text", "csv", "jsonl"])
def test_recommend_prints_ids_and_titles_literally(markup_store, capsys, fmt: str) -> None:
    store, titles = markup_store
    rc, out, err = run(capsys, "recommend", "--store", str(store), "--user", MARKUP_USER, "--k", "4", "--format", fmt)
    assert rc == 0, err
    assert MARKUP_USER in out and "Traceback" not in err
    if fmt == "jsonl":
        rows = pd.read_json(__import__("io").StringIO(out), lines=True, dtype=False)
        assert (rows["user"] == MARKUP_USER).all() and [titles[i] for i in rows["item"]] == rows["title"].tolist()
    else:
        shown = [t for t in MARKUP_TITLES if t in out]
        assert shown, out  # "[bold]…" and "[link=…]" are printed as they are, not dropped or turned into style


@pytest.mark.slow
def test_recommend_with_explanations_and_explain_keep_markup(markup_store, capsys) -> None:
    store, titles = markup_store
    rc, out, err = run(capsys, "recommend", "--store", str(store), "--user", MARKUP_USER, "--k", "1", "--explain",
                       "--format", "table")
    assert rc == 0, err
    assert "--format table is deprecated; use --format text" in err and MARKUP_USER in out
    rc, out, err = run(capsys, "recommend", "--store", str(store), "--user", MARKUP_USER, "--k", "1", "--format", "json")
    item = pd.read_json(__import__("io").StringIO(out), dtype=False)["item"].iloc[0]
    rc, out, err = run(capsys, "explain", "--store", str(store), "--user", MARKUP_USER, "--item", item)
    assert rc == 0, err
    assert f"user {MARKUP_USER} · {titles[item]} ({item})" in out


@pytest.mark.slow
def test_unknown_user_with_markup_is_a_one_line_error(markup_store, capsys) -> None:
    store, _ = markup_store
    rc, out, err = run(capsys, "recommend", "--store", str(store), "--user", "[bold]nobody[/x]")
    assert rc == 2 and err.startswith("kgrec: error:") and "[bold]nobody[/x]" in err and "Traceback" not in err


@pytest.mark.neo4j
def test_query_prints_markup_literally(capsys) -> None:
    import os

    uri = os.environ.get("KGREC_TEST_NEO4J_URI", "bolt://127.0.0.1:7687")
    q = "UNWIND ['[bold]Heat[/bold]', '[/x]', '[link=https://evil.example]C[/link]'] AS t RETURN t AS `[/x]`"
    rc, out, err = run(capsys, "query", q, "--store", uri)
    assert rc == 0, err
    for t in ("[/x]", "[bold]Heat[/bold]", "[link=https://evil.example]C[/link]"):
        assert t in out
