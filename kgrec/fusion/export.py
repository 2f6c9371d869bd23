"""Batch export of top-K recommendations: streamed in chunks of users, resumable, atomic, deterministic.

Each chunk of users is written as one Parquet part into a work folder next to the output
(``.<name>.parts/``, with ``job.json`` describing the job). When every part is there, the parts
are streamed into the final file (Parquet, CSV or JSONL by extension) through a temporary file
that is renamed into place, and the work folder is removed. Readers never see a half-written
file. After a crash, ``resume=True`` keeps the finished parts of the same job and computes only
the rest, so the result is byte-identical to an uninterrupted run. Memory holds one chunk at a
time, whatever the number of users.

Each finished part has a ``part-N.done`` beside it (its sha256 and row count), written just
before the part is renamed into place; on resume a part counts as finished only if its bytes still match, and a damaged
or unfinished one is computed again. One export at a time may use an output: a second one to the
same ``--out`` fails at once naming the first one's pid (a ``flock`` on ``.<name>.lock``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kgrec._atomic import atomic_file, sha256_file, write_text_atomic
from kgrec._fs import LockTimeoutError, disk_error, is_disk_error, writer_lock
from kgrec.errors import KgrecError
from kgrec.fusion.export_files import (
    assemble,
    check_writable,
    digest,
    finished_parts,
    output_format,
    parts_dir,
    schema,
)
from kgrec.fusion.recommender import Recommender

__all__ = ["check_writable", "export", "output_format", "parts_dir", "recommend_chunk", "recommend_table"]

log = logging.getLogger(__name__)


def recommend_table(
    rec: Recommender,
    users: Sequence[str],
    k: int,
    *,
    explain: bool = False,
    item_numbers: np.ndarray | None = None,
    exclude_numbers: np.ndarray | None = None,
    diversity: float = 0.0,
    long_tail: float = 0.0,
    lang: str | None = None,
    diversity_by: str = "vectors",
) -> pa.Table:
    """Recommendations of one chunk of users as an Arrow table with the export's columns.

    Built from numbers with Arrow ``take`` on the id arrays (no per-row Python work
    unless ``explain``), which keeps the export close to the bare matmul + top-k speed.
    Each user gets ``min(k, items left for them)`` rows, whatever the other users of the chunk have seen.
    ``diversity`` / ``long_tail`` re-rank each list (:mod:`kgrec.fusion.rerank`; ``diversity_by``: vectors,
    categories or both); with ``explain``, the sentence of an item the re-ranker moved up ends with why.
    """
    from kgrec.fusion.rerank import check_by, check_options, note, reranked_topk

    st = rec.state
    ids = st.arrow_ids()
    nums = st.vocabs.user.numbers(list(users))
    diversity, long_tail = check_options(diversity, long_tail)
    by = check_by(diversity_by)
    promoted = None
    if diversity > 0 or long_tail > 0:
        cats = rec.category_matrix(st) if by != "vectors" and diversity > 0 else None
        rr = reranked_topk(
            st,
            nums,
            k,
            diversity=diversity,
            long_tail=long_tail,
            candidates=item_numbers,
            exclude=exclude_numbers,
            by=by if cats is not None else "vectors",
            categories=cats,
        )
        top, promoted = rr.top, rr.promoted[rr.top.valid]
    else:
        top = st.topk(nums, k, candidates=item_numbers, exclude=exclude_numbers)
    rows, ranks, inums, scores = top.flat()
    cols = {
        "user": ids[0].take(pa.array(nums[rows])),
        "item": ids[1].take(pa.array(inums)),
        "rank": pa.array(ranks),
        "score": pa.array(scores.astype(np.float64)),
        "model_version": pa.array([st.model_version] * len(rows), pa.string()),
    }
    if explain:  # rec.explain(user, item, top=1, listed=True) of every row, batched (kgrec.fusion.explain_batch)
        from kgrec.fusion.explain_batch import explain_rows

        # listed: every row of the list is explained as a recommendation ("Recommended because ..."), also in a
        # restricted or re-ranked list, never with the why-not wording of an item outside the top k by score
        got = explain_rows(rec, cols["user"].to_pylist(), cols["item"].to_pylist(), lang=lang, k=k, listed=True)
        sentences = got.sentences
        if promoted is not None:
            notes = [note(bool(p), diversity, long_tail, by) for p in promoted.tolist()]
            sentences = [s + (f" ({w})" if w else "") for s, w in zip(sentences, notes, strict=True)]
        cols["explanation"] = pa.array(sentences, pa.string())
        cols["path"] = pa.array(got.paths, pa.string())
    return pa.table(cols, schema=schema(explain))


def recommend_chunk(
    rec: Recommender,
    users: Sequence[str],
    k: int,
    *,
    explain: bool = False,
    items: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Recommendations of one chunk of users with the export's columns, as a DataFrame."""
    return recommend_table(
        rec,
        users,
        k,
        explain=explain,
        item_numbers=rec.state.known_items(items),
        exclude_numbers=rec.state.known_items(exclude),
    ).to_pandas()


def export(
    rec: Recommender,
    out: str | Path,
    k: int,
    *,
    users: Sequence[str] | None = None,
    explain: bool = False,
    items: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    chunk_size: int = 1024,
    resume: bool = False,
    progress: bool = True,
    on_chunk: Callable[[pd.DataFrame], object] | None = None,
    diversity: float = 0.0,
    long_tail: float = 0.0,
    lang: str | None = None,
    diversity_by: str = "vectors",
) -> dict[str, int]:
    """Write top-``k`` recommendations of ``users`` (default: all) to ``out``.

    Args:
        items: restrict candidates to these item ids (e.g. in stock).
        exclude: never recommend these item ids.
        chunk_size: users per chunk (one Parquet part each).
        resume: continue an interrupted export of the same job from its finished parts.
        on_chunk: called with every chunk's frame, in order, while the final file is
            assembled (``kgrec export --to-neo4j`` writes them to Neo4j this way).
        diversity: MMR weight λ in [0, 1] of the re-ranker (0: off; :mod:`kgrec.fusion.rerank`).
        long_tail: popularity penalty β >= 0 of the re-ranker (0: off).
        diversity_by: what "alike" means for ``diversity``: vectors, categories (e.g. genres) or both.
        lang: language of the ``explanation`` sentences (``kgrec.messages``; default English).

    Returns:
        ``{"users", "rows", "chunks", "resumed_chunks"}``.
    """
    from kgrec.fusion.rerank import check_by, check_options

    diversity, long_tail = check_options(diversity, long_tail)
    by = check_by(diversity_by)
    fmt = output_format(out)
    check_writable(out)
    opts = _Options(
        k=k,
        fmt=fmt,
        explain=explain,
        chunk_size=chunk_size,
        resume=resume,
        progress=progress,
        on_chunk=on_chunk,
        diversity=diversity,
        long_tail=long_tail,
        lang=lang,
        diversity_by=by,
    )
    with contextlib.nullcontext() if rec.live is None else rec.live.pinned():  # one snapshot of a live store
        return _export(rec, out, opts, users, items, exclude)


@dataclass(frozen=True)
class _Options:
    """How one export runs (the arguments of :func:`export` past the data)."""

    k: int
    fmt: str
    explain: bool
    chunk_size: int
    resume: bool
    progress: bool
    on_chunk: Callable[[pd.DataFrame], object] | None
    diversity: float
    long_tail: float
    lang: str | None
    diversity_by: str = "vectors"


def _export(
    rec: Recommender,
    out: str | Path,
    o: _Options,
    users: Sequence[str] | None,
    items: Iterable[str] | None,
    exclude: Iterable[str] | None,
) -> dict[str, int]:
    user_list = list(users) if users is not None else rec.vocabs.user.to_list()
    item_list = sorted(set(items)) if items is not None else None
    exclude_list = sorted(set(exclude)) if exclude is not None else None
    job: dict[str, object] = {
        "model_version": rec.model_version,
        "data_fingerprint": rec.data_fingerprint if rec.live is None else rec.live.fingerprint,
        "k": o.k,
        "explain": o.explain,
        "chunk_size": o.chunk_size,
        "users": digest(user_list),
        "n_users": len(user_list),
        "items": digest(item_list),
        "exclude": digest(exclude_list),
    }
    if o.diversity or o.long_tail:  # jobs without the re-ranker keep their old job.json (resumable)
        job.update(diversity=o.diversity, long_tail=o.long_tail)
    if o.diversity and o.diversity_by != "vectors":  # old jobs (vectors) keep their job.json
        job.update(diversity_by=o.diversity_by)
    if o.explain and o.lang not in (None, "en"):  # sentences in another language (kgrec.messages); English unchanged
        job.update(lang=o.lang)
    work = parts_dir(out)
    lock = work.parent / f".{Path(out).name}.lock"
    try:
        with writer_lock(
            lock, f"{out}: another export to this file is running", "wait for it, or pass another --out", timeout=0
        ):
            return _export_locked(rec, out, o, job, work, user_list, item_list, exclude_list)
    except LockTimeoutError as e:
        raise KgrecError(str(e)) from None
    except OSError as e:
        if not is_disk_error(e):
            raise
        shutil.rmtree(work, ignore_errors=True)  # the parts would only fill the disk further
        raise disk_error(e, f"the export {out}") from None


def _export_locked(
    rec: Recommender,
    out: str | Path,
    o: _Options,
    job: dict[str, object],
    work: Path,
    users: list[str],
    items: list[str] | None,
    exclude: list[str] | None,
) -> dict[str, int]:
    from tqdm.auto import tqdm

    if work.exists():
        old = json.loads((work / "job.json").read_text()) if (work / "job.json").is_file() else None
        if o.resume and old is not None and old != job:
            diff = sorted(key for key in job if old.get(key) != job[key])
            raise KgrecError(
                f"{out}: --resume found an unfinished export of a different job (differs in {', '.join(diff)}); "
                f"rerun without --resume to start over"
            )
        if not o.resume:
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / "job.json").write_text(json.dumps(job, sort_keys=True) + "\n")
    n_chunks = (len(users) + o.chunk_size - 1) // o.chunk_size
    sch = schema(o.explain)
    done = finished_parts(work, sch, out)
    resumed = len(done)
    if resumed:
        log.info("%s: resuming, %d of %d chunks already done", out, resumed, n_chunks)
    cand_n, excl_n = rec.state.known_items(items), rec.state.known_items(exclude)
    with tqdm(total=len(users), desc="exporting", unit="user", disable=not o.progress, dynamic_ncols=True) as bar:
        bar.update(sum(min(o.chunk_size, len(users) - c * o.chunk_size) for c in done))
        for c in range(n_chunks):
            if c in done:
                continue
            chunk = users[c * o.chunk_size : (c + 1) * o.chunk_size]
            table = recommend_table(
                rec,
                chunk,
                o.k,
                explain=o.explain,
                item_numbers=cand_n,
                exclude_numbers=excl_n,
                diversity=o.diversity,
                long_tail=o.long_tail,
                lang=str(job.get("lang", "en")),
                diversity_by=o.diversity_by,
            )
            part = work / f"part-{c:06d}.parquet"
            with atomic_file(part) as tmp:  # .done first, then the part: a part on disk always has its record
                pq.write_table(table, tmp, compression="zstd")
                write_text_atomic(
                    part.with_suffix(".done"), json.dumps({"sha256": sha256_file(tmp), "rows": table.num_rows}) + "\n"
                )
            bar.update(len(chunk))
    rows = assemble(work, n_chunks, out, o.fmt, sch, o.on_chunk)
    shutil.rmtree(work)
    log.info("wrote %d recommendations for %d users to %s", rows, len(users), out)
    return {"users": len(users), "rows": rows, "chunks": n_chunks, "resumed_chunks": resumed}
