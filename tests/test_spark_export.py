"""Issue 15, part 2 (Spark): ``kgrec export --engine spark`` gives the local export's top-K.

The Spark export runs a real pyspark job in local mode (Java 17, pyspark from PyPI): item vectors broadcast, user
partitions scored with ``mapInArrow`` through kgrec's one top-k, Parquet parts written by Spark. On the same model it
must give the same items, ranks and scores (to 1e-6) per user as :func:`kgrec.fusion.export.export`, the same row
count, the same columns and dtypes, and a ``_SUCCESS`` marker; the CLI runs it with ``--engine spark``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from kgrec.cli import main
from kgrec.fusion.export import export
from kgrec.fusion.export_spark import export_spark

pytestmark = pytest.mark.slow

COLUMNS = ["user", "item", "rank", "score", "model_version"]


def _frame(df: pd.DataFrame) -> pd.DataFrame:
    return df[COLUMNS].sort_values(["user", "rank"]).reset_index(drop=True)


def assert_same_top_k(local: pd.DataFrame, spark: pd.DataFrame) -> None:
    """Same rows per user: the same (user, item) pairs, scores equal to 1e-6, and the same rank for every item except
    inside a group of exactly equal local scores of one user, where only the set of ranks must agree."""
    assert len(spark) == len(local)
    m = local.merge(spark, on=["user", "item"], how="outer", suffixes=("_l", "_s"), indicator=True)
    assert (m["_merge"] == "both").all(), m[m["_merge"] != "both"].head()
    assert np.allclose(m["score_l"], m["score_s"], rtol=1e-6, atol=1e-6)
    assert (m["model_version_l"] == m["model_version_s"]).all()
    tie = m.groupby(["user", "score_l"])["item"].transform("size") > 1
    assert (m.loc[~tie, "rank_l"] == m.loc[~tie, "rank_s"]).all()
    for _, g in m[tie].groupby(["user", "score_l"]):
        assert sorted(g["rank_l"]) == sorted(g["rank_s"])
    # every user's ranks run 1..n in both
    for frame in (local, spark):
        assert (frame.groupby("user")["rank"].agg(lambda r: sorted(r) == list(range(1, len(r) + 1)))).all()


def test_spark_export_equals_local_export(trained, tmp_path: Path) -> None:
    local_out = tmp_path / "local.parquet"
    spark_out = tmp_path / "spark"
    local_rep = export(trained, local_out, 20, chunk_size=50, progress=False)
    rep = export_spark(trained, spark_out, 20, master="local[2]", partitions=3, chunk_size=50)
    assert (spark_out / "_SUCCESS").is_file()
    parts = sorted(spark_out.glob("part-*.parquet"))
    assert len(parts) == 3  # one Parquet part per user partition, written by Spark
    local_t, spark_t = pq.read_table(local_out), pq.read_table(spark_out)
    assert [(f.name, f.type) for f in spark_t.schema] == [(f.name, f.type) for f in local_t.schema]
    local, spark = _frame(local_t.to_pandas()), _frame(spark_t.to_pandas())
    assert rep["rows"] == local_rep["rows"] == len(local) and rep["users"] == local_rep["users"] == 160
    assert_same_top_k(local, spark)
    # the parts hold the users in the local export's order (partitions are ranges of users, in order)
    in_order = pd.concat([pq.read_table(p).to_pandas() for p in parts])["user"].drop_duplicates().tolist()
    assert in_order == local_t.column("user").to_pandas().drop_duplicates().tolist()


def test_spark_export_with_users_candidates_and_exclusions(trained, tmp_path: Path) -> None:
    users = trained.vocabs.user.to_list()[::3]
    items = trained.vocabs.item.to_list()
    cand = items[::2] + ["not-an-item"]
    excl = items[:10]
    local_out, spark_out = tmp_path / "local.parquet", tmp_path / "spark"
    export(trained, local_out, 200, users=users, items=cand, exclude=excl, progress=False)
    rep = export_spark(trained, spark_out, 200, users=users, items=cand, exclude=excl)
    local, spark = _frame(pd.read_parquet(local_out)), _frame(pd.read_parquet(spark_out))
    assert rep["users"] == len(users) and set(spark["user"]) == set(users)
    assert not set(spark["item"]) & set(excl) and set(spark["item"]) <= set(cand)
    assert spark.groupby("user").size().max() < 120  # k above the candidates: each user gets what is left
    assert_same_top_k(local, spark)
    # a second run replaces the folder whole
    again = export_spark(trained, spark_out, 5, users=users[:4])
    assert again["rows"] == 20 and len(pd.read_parquet(spark_out)) == 20


def test_spark_export_refuses_a_folder_that_is_not_an_export(trained, tmp_path: Path) -> None:
    from kgrec.errors import KgrecError

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(KgrecError, match="not an earlier Spark export"):
        export_spark(trained, precious, 5)
    assert (precious / "notes.txt").read_text() == "keep me"
    (tmp_path / "file.parquet").write_text("x")
    with pytest.raises(KgrecError, match="is a file"):
        export_spark(trained, tmp_path / "file.parquet", 5)


def test_cli_export_engine_spark(trained, synth_dataset, tmp_path: Path, capsys) -> None:
    from kgrec.graph import open_store

    store = tmp_path / "store"
    with open_store(store) as st:
        st.ingest(synth_dataset)
        trained.save(st.model_root() / "default")
    assert main(["export", "--store", str(store), "--k", "10", "--out", str(tmp_path / "local.parquet")]) == 0
    capsys.readouterr()
    out = tmp_path / "recs_dir"
    rc = main(["export", "--engine", "spark", "--spark-master", "local[2]", "--store", str(store), "--k", "10",
               "--out", str(out)])
    text = capsys.readouterr()
    assert rc == 0, text.err
    assert "wrote 1600 rows for 160 users" in text.out and str(out) in text.out
    assert (out / "_SUCCESS").is_file()
    assert_same_top_k(_frame(pd.read_parquet(tmp_path / "local.parquet")), _frame(pd.read_parquet(out)))
    # what the Spark engine does not do (yet) is refused before any work, saying why
    for extra, why in ((["--explain"], "--explain"), (["--resume"], "--resume"), (["--to-neo4j"], "--to-neo4j"),
                       (["--diversity", "0.5"], "--diversity")):
        rc = main(["export", "--engine", "spark", "--store", str(store), "--out", str(tmp_path / "x"), *extra])
        err = capsys.readouterr().err
        assert rc == 2 and why in err and "--engine spark" in err, err
        assert not (tmp_path / "x").exists()
    rc = main(["export", "--engine", "flink", "--store", str(store), "--out", str(tmp_path / "x")])
    assert rc == 2 and "local or spark" in capsys.readouterr().err


def test_spark_leaves_no_temporary_files(trained, tmp_path: Path) -> None:
    """Spark's scratch, warehouse and log folders live under one temporary folder per process (``kgrec-spark-jvm-*``,
    removed at exit; Spark keeps the first session's scratch folder for the life of its JVM, so a folder per session
    would come back after its removal); the output's parent holds only the output."""
    import tempfile

    def others() -> set[str]:
        return {p.name for p in Path(tempfile.gettempdir()).glob("kgrec-spark-*") if "-jvm-" not in p.name}

    before, seen = set(os.listdir(tmp_path)), others()
    for n in (3, 4):  # two sessions in one process
        export_spark(trained, tmp_path / "out", n, users=trained.vocabs.user.to_list()[:5])
    assert set(os.listdir(tmp_path)) - before == {"out", ".out.lock"}  # the lock file, as the local export leaves it
    assert others() <= seen
    assert not Path("spark-warehouse").exists() and not Path("metastore_db").exists()
