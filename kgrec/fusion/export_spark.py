"""Batch export on Apache Spark (``kgrec export --engine spark``): the local export's top-K, as a pyspark job.

What runs where:

* The **driver** (this process) turns ids into numbers once, then builds one DataFrame row per user: its position
  in the export, its number, its id, its fused vector and the item numbers it has seen (from the state's CSR
  histories). The rows are range-partitioned over the users, in order.
* A **broadcast** carries what every task needs whole: the item vectors (``items × dim × 4`` bytes), the item ids,
  the candidate and excluded item numbers and the model version.
* Each **task** scores its partition with ``mapInArrow``, one Arrow batch of ``chunk_size`` users at a time, through
  kgrec's one top-k (:func:`kgrec.fusion.ranking.topk_scores`, ties by the lower item number) with the same
  exclusions as :meth:`kgrec.fusion.state.ModelState.topk`, and Spark writes the rows as Parquet parts (``user,
  item, rank, score, model_version``, the local export's columns and types) plus a ``_SUCCESS`` marker.

The output is a folder. A local one is written next to its place and swapped in whole
(:func:`kgrec._atomic.atomic_dir`): readers see the previous folder or the new one, never a half-written one, and a
failed job leaves the previous folder as it was. One export at a time may use an output (a ``flock`` on
``.<name>.lock``). Spark's scratch, warehouse and log folders live under a temporary folder removed at exit, and
its log is quiet (errors only). Masters: ``local[N]`` (the default ``local[2]``), ``spark://host:7077``, ``yarn``,
``k8s://…``; see ``docs/scale.md`` for what a cluster needs (kgrec on the executors, an output every node sees).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from kgrec._atomic import atomic_dir
from kgrec._fs import LockTimeoutError, disk_error, is_disk_error, write_probe, writer_lock
from kgrec.errors import KgrecError
from kgrec.fusion.export_files import schema
from kgrec.fusion.ranking import TopK, topk_scores

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from kgrec.fusion.recommender import Recommender
    from kgrec.fusion.state import ModelState

__all__ = [
    "INSTALL_PYSPARK",
    "SPARK_JAVA_VERSIONS",
    "check_master",
    "check_output",
    "check_spark",
    "export_spark",
    "score_batches",
    "spark_session",
]

log = logging.getLogger(__name__)

INSTALL_PYSPARK = "pip install 'pyspark>=3.5,<3.6' (bash scripts/setup.sh installs it with the dev dependencies)"
INSTALL_JAVA = (
    "install Java 17 (apt-get install openjdk-17-jre-headless) or set JAVA_HOME to a Java 17 JDK, "
    "e.g. JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64"
)
#: the Java versions Spark 3.5 runs on
SPARK_JAVA_VERSIONS = (8, 11, 17)
#: users per partition at most when the caller does not say how many partitions (memory of one task's input)
USERS_PER_PARTITION = 50_000

_MASTER = re.compile(r"local(\[(\d+|\*)(,\d+)?\])?|spark://\S+|yarn|k8s://\S+")
_LOG4J = """\
# errors only; Spark's shell start-up takes the level of its logger (under org.apache) for the root, and says so
# unless the two are the same already
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = stderr
appender.stderr.type = Console
appender.stderr.name = stderr
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = spark %p %c{1}: %m%n%ex
logger.apache.name = org.apache
logger.apache.level = error
logger.sparkproject.name = org.sparkproject
logger.sparkproject.level = error
logger.netty.name = io.netty
logger.netty.level = error
"""
#: Spark DDL of the Arrow types of the export's columns
_DDL = {pa.string(): "string", pa.int64(): "bigint", pa.float64(): "double"}
#: what an earlier Spark export folder may hold (and nothing else, or it is not replaced)
_OUTPUT_FILE = re.compile(r"(_SUCCESS|part-.*\.parquet|\..*\.crc)")


def check_master(master: str) -> str:
    """``master`` if it is a Spark master kgrec knows how to use, else a :class:`KgrecError` saying which are."""
    if not _MASTER.fullmatch(master):
        raise KgrecError(
            f"Spark master {master!r}: expected local[N] (e.g. local[2], local[*]), spark://host:7077, yarn or k8s://…"
        )
    return master


def _java_version(java: str) -> int | None:
    try:
        text = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if m is None:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major  # "1.8.0_x" is Java 8


def check_spark() -> None:
    """Fail with a clear :class:`KgrecError` when pyspark or a Java that Spark 3.5 runs on is missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise KgrecError(f"--engine spark needs pyspark, which is not installed: {INSTALL_PYSPARK}") from None
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if home and not Path(str(java)).is_file():
        raise KgrecError(f"--engine spark needs Java: JAVA_HOME={home} has no bin/java; {INSTALL_JAVA}")
    if java is None:
        raise KgrecError(f"--engine spark needs Java, and no java is on PATH; {INSTALL_JAVA}")
    version = _java_version(java)
    if version is not None and version not in SPARK_JAVA_VERSIONS:
        raise KgrecError(
            f"--engine spark: {java} is Java {version}; Spark 3.5 runs on Java 8, 11 or 17; {INSTALL_JAVA}"
        )


# ---------------------------------------------------------------------------------------------- the session
_jvm_home: Path | None = None


def _jvm_dir() -> Path:
    """The folder of what the JVM fixes once, at its start or its first session (log4j config, java.io.tmpdir,
    Derby's home, Spark's local scratch folder, the warehouse): one per process, because pyspark keeps its JVM for
    the life of the process and Spark keeps the first session's local folder for the life of the JVM; removed at
    exit."""
    global _jvm_home
    if _jvm_home is None or not _jvm_home.is_dir():
        d = Path(tempfile.mkdtemp(prefix="kgrec-spark-jvm-"))
        for sub in ("tmp", "derby", "local", "warehouse"):
            (d / sub).mkdir()
        (d / "log4j2.properties").write_text(_LOG4J, encoding="utf-8")
        atexit.register(shutil.rmtree, d, True)
        _jvm_home = d
    return _jvm_home


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    """Set environment variables that are not set yet, for the block only (pyspark reads them at start-up)."""
    added = [k for k in values if k not in os.environ]
    for k in added:
        os.environ[k] = values[k]
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


@contextlib.contextmanager
def spark_session(
    master: str = "local[2]", *, conf: Mapping[str, str] | None = None, app_name: str = "kgrec"
) -> Iterator[SparkSession]:
    """A pyspark session for one job, stopped afterwards, with its scratch folders under a temporary folder.

    A session already active in this process (a notebook's) is used as it is and left running; ``master`` and
    ``conf`` are then the caller's business. Local masters run the Python workers with this interpreter.

    Raises:
        KgrecError: pyspark or Java missing, a master kgrec does not know, or a JVM that does not start.
    """
    check_master(master)
    check_spark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        if active.sparkContext.master != master:
            log.warning("using the active Spark session (master %s), not %s", active.sparkContext.master, master)
        yield active
        return
    logging.getLogger("py4j").setLevel(logging.WARNING)
    jvm = _jvm_dir()
    local = master.startswith("local")
    java_opts = (
        f"-Dlog4j2.configurationFile={(jvm / 'log4j2.properties').as_uri()} -Djava.io.tmpdir={jvm / 'tmp'} "
        f"-Dderby.system.home={jvm / 'derby'}"
    )
    settings = {
        "spark.app.name": app_name,
        "spark.local.dir": str(jvm / "local"),  # Spark empties it at each stop
        "spark.sql.warehouse.dir": (jvm / "warehouse").as_uri(),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
        **({"spark.ui.enabled": "false"} if local else {}),
        **(conf or {}),
    }
    settings["spark.driver.extraJavaOptions"] = (
        java_opts + " " + settings.get("spark.driver.extraJavaOptions", "")
    ).strip()
    builder = SparkSession.builder.master(master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    env = {"PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"} if local else {}
    with _env(**env):
        try:
            session = builder.getOrCreate()
        except Exception as e:  # pyspark's PySparkRuntimeError [JAVA_GATEWAY_EXITED], py4j errors
            raise KgrecError(
                f"Spark did not start (master {master}): {str(e).strip().splitlines()[-1][:300]}; "
                f"is Java 17 installed? {INSTALL_JAVA}"
            ) from e
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


# ---------------------------------------------------------------------------------------------- the tasks
def score_batches(
    batches: Iterable[pa.RecordBatch], *, payload: Any, k: int, chunk_size: int, threads: int = 1
) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function: the top-``k`` rows of a partition's users (columns ``pos, user, id, vec, seen``).

    ``payload`` is the broadcast (``.value``: item vectors, item ids, candidates, excluded items, model version).
    Users are scored in the local export's chunks (positions ``c * chunk_size`` to ``(c + 1) * chunk_size``, however
    Spark cut the batches), so each matmul has the same rows as the local export's and the scores agree to the bit.
    Each chunk goes through :func:`kgrec.fusion.ranking.topk_scores` with each user's seen items and the excluded
    items left out, as :meth:`kgrec.fusion.state.ModelState.topk` does for the local export.
    """
    import torch

    torch.set_num_threads(threads)
    b = payload.value
    pending: list[pa.RecordBatch] = []
    current = -1
    for batch in batches:
        chunk = batch.column("pos").to_numpy(zero_copy_only=False) // chunk_size
        cuts = [0, *(np.flatnonzero(np.diff(chunk)) + 1).tolist(), batch.num_rows]
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            if hi == lo:
                continue
            if pending and chunk[lo] != current:
                yield _score_chunk(pending, b, k)
                pending = []
            current = int(chunk[lo])
            pending.append(batch.slice(lo, hi - lo))
    if pending:
        yield _score_chunk(pending, b, k)


def _score_chunk(pieces: list[pa.RecordBatch], b: Mapping[str, Any], k: int) -> pa.RecordBatch:
    """The export rows of one chunk of users (the pieces of one chunk, in order)."""
    import pyarrow.compute as pc
    import torch

    part = pa.Table.from_batches(pieces).combine_chunks()
    n = part.num_rows
    items_t = torch.from_numpy(b["items"])
    dim = items_t.shape[1]
    vecs = part.column("vec").chunk(0).flatten().to_numpy(zero_copy_only=False)
    if len(vecs) != n * dim:
        raise KgrecError(f"the Spark export's user vectors hold {len(vecs)} numbers for {n} users of {dim}")
    seen_col = part.column("seen").chunk(0)
    lengths = pc.list_value_length(seen_col).to_numpy(zero_copy_only=False)
    seen = np.split(seen_col.flatten().to_numpy(zero_copy_only=False), np.cumsum(lengths)[:-1])
    excl = {r: np.concatenate([b["exclude"], s]) for r, s in enumerate(seen)}
    cand = None if b["candidates"] is None else torch.from_numpy(b["candidates"])
    with torch.no_grad():
        s, t = topk_scores(torch.from_numpy(vecs.astype(np.float32).reshape(n, dim)), items_t, k, excl, cand)
    rows, ranks, inums, scores = TopK(s.numpy(), t.numpy()).flat()
    return pa.RecordBatch.from_arrays(
        [
            part.column("id").chunk(0).take(pa.array(rows)),
            b["item_ids"].take(pa.array(inums)),
            pa.array(ranks, pa.int64()),
            pa.array(scores.astype(np.float64)),
            pa.array([b["model_version"]] * len(rows), pa.string()),
        ],
        schema=schema(False),
    )


# ---------------------------------------------------------------------------------------------- the export
def _is_uri(out: str) -> bool:
    return bool(re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", out)) and not out.startswith("file://")


def _local_path(out: str | Path) -> Path:
    text = str(out)
    return Path(text[len("file://") :] if text.startswith("file://") else text).expanduser().absolute()


def check_output(out: str | Path) -> None:
    """Fail before any work when ``out`` cannot become the export's folder (a URI is left to Spark)."""
    if not _is_uri(str(out)):
        _check_out(_local_path(out))


def _check_out(out: Path) -> None:
    if out.is_file():
        raise KgrecError(
            f"{out}: is a file; --engine spark writes a folder of Parquet parts: give a folder, e.g. --out recs_dir"
        )
    if out.is_dir():
        other = sorted(p.name for p in out.iterdir() if not _OUTPUT_FILE.fullmatch(p.name))
        if other:
            raise KgrecError(
                f"{out}: not an earlier Spark export (it holds {', '.join(other[:3])}); refusing to replace it: "
                f"give a new folder or remove this one"
            )
    parent = out.parent
    if not parent.is_dir():
        raise KgrecError(f"{out}: the output folder {parent} does not exist")
    err = write_probe(parent)
    if err is not None:
        raise KgrecError(f"{out}: cannot write to {parent} ({err.strerror})")


def _user_frame(st: ModelState, nums: np.ndarray, ids: Sequence[str], chunk_size: int) -> Any:
    """The driver's table of users (pandas, for ``createDataFrame``): position, chunk, number, id, vector, seen
    items."""
    import pandas as pd

    hist = st.hist_items.astype(np.int64, copy=False)
    lo, hi = st.hist_ptr[nums], st.hist_ptr[nums + 1]
    vecs = st.arrays["users"][nums]
    return pd.DataFrame(
        {
            "pos": np.arange(len(nums), dtype=np.int64),
            "chunk": np.arange(len(nums), dtype=np.int64) // chunk_size,
            "user": nums,
            "id": pd.Series(list(ids), dtype=object),
            "vec": list(vecs),
            "seen": [hist[a:b] for a, b in zip(lo.tolist(), hi.tolist())],
        }
    )


def _short(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    return (lines[-1] if lines else type(e).__name__)[:300]


def export_spark(
    rec: Recommender,
    out: str | Path,
    k: int,
    *,
    master: str = "local[2]",
    users: Sequence[str] | None = None,
    items: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    partitions: int | None = None,
    chunk_size: int = 1024,
    task_threads: int = 1,
    spark_conf: Mapping[str, str] | None = None,
) -> dict[str, int]:
    """Write top-``k`` recommendations of ``users`` (default: all) to the folder ``out`` with a Spark job.

    The same rows as :func:`kgrec.fusion.export.export` (items, ranks, scores; ties by the lower item number), as
    Parquet parts written by Spark, one per partition, users in order across the parts, and a ``_SUCCESS`` marker.

    Args:
        master: ``local[N]``, ``spark://host:7077``, ``yarn`` or ``k8s://…`` (a session already active in this
            process is used instead).
        items: restrict candidates to these item ids; exclude: never recommend these (unknown ids are ignored).
        partitions: user partitions (default: the session's default parallelism, at least one per
            :data:`USERS_PER_PARTITION` users).
        chunk_size: users scored at once in a task (one Arrow batch; memory ``chunk_size × items × 4`` bytes).
        task_threads: torch threads in each task (Spark runs one task per core).
        spark_conf: more Spark settings (e.g. ``{"spark.driver.memory": "4g"}``).
        out: a folder path, or a URI Spark writes to (``hdfs://…``, ``s3a://…``: written in place, overwritten).

    Returns:
        ``{"users", "rows", "partitions"}``.
    """
    if k < 1:
        raise ValueError(f"k={k}: expected a positive number of recommendations")
    if chunk_size < 1 or task_threads < 1 or (partitions is not None and partitions < 1):
        raise ValueError("chunk_size, task_threads and partitions must be positive")
    check_master(master)
    remote = _is_uri(str(out))
    target = None if remote else _local_path(out)
    if target is not None:
        _check_out(target)
    check_spark()
    pinned = contextlib.nullcontext(rec.state) if rec.live is None else rec.live.pinned()
    with pinned as st, spark_session(master, conf=spark_conf, app_name="kgrec-export") as spark:
        user_list = list(users) if users is not None else st.vocabs.user.to_list()
        nums = st.vocabs.user.numbers(user_list)  # ids -> numbers, once (UnknownIdError for an unknown user)
        payload = {
            "items": np.ascontiguousarray(st.arrays["items"], dtype=np.float32),
            "item_ids": st.arrow_ids()[1],
            "candidates": st.known_items(items),
            "exclude": np.asarray(st.known_items(exclude) if exclude is not None else [], dtype=np.int64),
            "model_version": st.model_version,
        }
        sc = spark.sparkContext
        n_parts = partitions or max(sc.defaultParallelism, math.ceil(len(user_list) / USERS_PER_PARTITION))
        n_parts = max(1, min(n_parts, math.ceil(len(user_list) / chunk_size)))  # whole chunks in each partition
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(chunk_size))
        in_schema = "pos bigint, chunk bigint, user bigint, id string, vec array<float>, seen array<bigint>"
        out_ddl = ", ".join(f"{f.name} {_DDL[f.type]}" for f in schema(False))
        bc = sc.broadcast(payload)
        try:
            with warnings.catch_warnings():  # pyspark 3.5 calls a pandas function that pandas 3 deprecates
                warnings.filterwarnings("ignore", message=".*is_categorical_dtype is deprecated")
                frame = spark.createDataFrame(_user_frame(st, nums, user_list, chunk_size), in_schema)
            # ranges of whole chunks, in order: part N holds the users before those of part N + 1
            ranked = frame.repartitionByRange(n_parts, "chunk").sortWithinPartitions("pos")
            fn = functools.partial(score_batches, payload=bc, k=k, chunk_size=chunk_size, threads=task_threads)
            result = ranked.mapInArrow(fn, out_ddl)
            if target is None:
                _write(result, str(out))
                rows = spark.read.parquet(str(out)).count()
            else:
                rows = _write_local(result, target)
        finally:
            bc.unpersist()
    log.info("wrote %d recommendations for %d users to %s (Spark, %s)", rows, len(user_list), out, master)
    return {"users": len(user_list), "rows": rows, "partitions": n_parts}


def _write(result: Any, where: str) -> None:
    try:
        result.write.mode("overwrite").option("compression", "zstd").parquet(where)
    except KgrecError:
        raise
    except Exception as e:  # the job failed: Py4JJavaError, pyspark's captured exceptions
        raise KgrecError(f"{where}: the Spark export failed: {_short(e)}") from e


def _write_local(result: Any, target: Path) -> int:
    """Write through Spark into a folder beside ``target`` and swap it in whole; the rows written."""
    import pyarrow.parquet as pq

    lock = target.parent / f".{target.name}.lock"
    try:
        with (
            writer_lock(
                lock,
                f"{target}: another export to this folder is running",
                "wait for it, or pass another --out",
                timeout=0,
            ),
            atomic_dir(target) as tmp,
        ):
            _write(result, tmp.as_uri())
            for crc in tmp.glob(".*.crc"):  # Hadoop's local checksum files: not part of the export
                crc.unlink()
            if not (tmp / "_SUCCESS").is_file():
                raise KgrecError(f"{target}: the Spark job ended without its _SUCCESS marker; nothing was replaced")
            return sum(pq.read_metadata(p).num_rows for p in tmp.glob("part-*.parquet"))
    except LockTimeoutError as e:
        raise KgrecError(str(e)) from None
    except OSError as e:
        if not is_disk_error(e):
            raise
        raise disk_error(e, f"the export {target}") from None
