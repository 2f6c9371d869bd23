"""Forgetting users: the store, every model trained on it and the text cache lose every trace of them.

:func:`forget_users` (``kgrec forget``) runs, in this order:

1. each model is brought up to date with the store's appends (:meth:`~kgrec.fusion.live.LiveModel.refresh_all`), so
   folding nothing is lost for the users who stay;
2. the users' behaviour texts are collected from the store (the training text of each, and the text of every
   prefix of their history, which the cold-start path may have encoded) and their cached vectors are deleted from
   every encoder's cache folder (frozen or fine-tuned, of any model) under the cache folder of each model and of
   ``$KGREC_CACHE``;
3. the store forgets them (:meth:`~kgrec.graph.store.GraphStore.forget_users`: every snapshot that held them is
   rewritten, Neo4j loses their node, relationships and vector-index entries);
4. each model is rewritten without them (:func:`~kgrec.fusion.remap.materialize`: vocabularies, vectors, node
   vectors, the GNN's id embedding rows, histories, their share of the users-per-attribute-value counts) for the
   store's new data, under a new model version.

Run again after a crash, it finishes the job: users the store no longer holds are still removed from the models.
What stays, and how to remove it, is in ``docs/privacy.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from kgrec.encoders.behaviour import behaviour_text, own_texts, user_texts
from kgrec.encoders.text import TextEncoder, default_cache_dir, forget_cached_texts, text_cache_root
from kgrec.errors import KgrecError, ModelMismatchError, UnknownIdError
from kgrec.fusion.fitting import new_model_version
from kgrec.fusion.live import LiveModel
from kgrec.fusion.remap import materialize
from kgrec.fusion.state import ModelState
from kgrec.graph.hetero import Vocabularies
from kgrec.graph.store import GraphStore
from kgrec.loaders import schema as S

__all__ = ["ForgetReport", "attribute_values_of", "behaviour_texts_of", "forget_users"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ForgetReport:
    """What :func:`forget_users` removed."""

    users: list[str]
    store_changed: bool
    models: list[str]
    cache_entries: int
    fingerprint: str


def behaviour_texts_of(store: GraphStore, users: Sequence[str]) -> list[str]:
    """Every behaviour text of ``users`` kgrec may have encoded: the training text (history, tags, profile), the
    user's own text alone (profile, tags, interaction texts: what a model that composes user text vectors encodes)
    and the newest-first title list of every prefix of their history (the cold-start path's text)."""
    if not store.exists():
        return []
    ds = store.dataset()
    ids = set(users)
    sub = replace(
        ds,
        interactions=ds.interactions.loc[ds.interactions[S.USER].isin(ids)],
        tags=ds.tags.loc[ds.tags[S.USER].isin(ids)],
        users=ds.users.loc[ds.users[S.USER].isin(ids)],
        user_attributes=ds.user_attributes.loc[ds.user_attributes[S.USER].isin(ids)],
    )
    vocabs = Vocabularies.from_dataset(sub)
    # the whole behaviour text (model.user_text 'encode') and the user's own text alone ('compose')
    texts = [*user_texts(sub, vocabs), *own_texts(sub, vocabs)] if not sub.interactions.empty else []
    titles = dict(zip(ds.items[S.ITEM].tolist(), ds.items[S.TITLE].tolist(), strict=True))
    for user in users:
        h = store.user_history(user)
        names = [titles.get(i) or "" for i in h[S.ITEM].tolist()]
        texts += [behaviour_text([t for t in names[:n][::-1] if t]) for n in range(1, len(names) + 1)]
    return texts


def attribute_values_of(store: GraphStore, users: Sequence[str]) -> dict[str, list[str]]:
    """The attribute node ids (``name=value``) each of ``users`` holds in ``store``."""
    if not users or not store.exists():
        return {}
    ua = store.dataset().user_attributes
    ua = ua.loc[ua[S.USER].isin(set(users))]
    out: dict[str, list[str]] = {}
    for u, a, v in zip(ua[S.USER], ua[S.ATTRIBUTE], ua[S.VALUE], strict=True):
        out.setdefault(str(u), []).append(S.attribute_id(a, v))
    return out


def _without_holders(state: ModelState, held: dict[str, list[str]]) -> dict[str, dict[str, int]]:
    """``state``'s connector degrees less the forgotten users it knew in the users-per-attribute-value counts."""
    if "attribute" not in state.degrees:
        return state.degrees
    counts = dict(state.degrees["attribute"])
    for user, values in held.items():
        if user in state.vocabs.user:
            for a in values:
                if counts.get(a, 0) > 0:
                    counts[a] -= 1
    return {**state.degrees, "attribute": {a: n for a, n in counts.items() if n > 0}}


def forget_users(
    store: GraphStore, users: Sequence[str], model_dirs: Sequence[Path], *, encoder: TextEncoder | None = None
) -> ForgetReport:
    """Remove ``users`` from ``store``, from each model in ``model_dirs`` and from the text caches (every encoder's,
    under each model's cache folder, ``encoder``'s and the default one; ``encoder``'s memory too).

    Raises:
        UnknownIdError: a user neither the store nor any of the models holds (nothing is changed).
    """
    ids = list(dict.fromkeys(map(str, users)))
    if not ids:
        raise KgrecError("forget: name at least one user (--user U)")
    states = {Path(d): ModelState.load(d) for d in model_dirs}
    in_store = [u for u in ids if store.has_user(u)]
    unknown = [u for u in ids if u not in in_store and not any(u in st.vocabs.user for st in states.values())]
    if unknown:
        raise UnknownIdError("user", unknown[0], f"not in the store at {store.location} nor in its models")
    folded: dict[Path, ModelState] = {}
    for d, st in states.items():
        try:
            folded[d] = LiveModel(st, store).refresh_all()  # the appends of the users who stay are kept
        except ModelMismatchError:
            log.warning("%s: the store has moved on from this model by more than appends; forgetting only", d)
            folded[d] = st
    texts = behaviour_texts_of(store, in_store)
    removed = encoder.forget(texts) if encoder is not None else 0  # its memory too
    roots = [text_cache_root(st.config.text) for st in states.values()]
    roots += [text_cache_root(encoder.config)] if encoder is not None else []
    removed += forget_cached_texts(texts, [*roots, default_cache_dir() / "text"])
    held = attribute_values_of(store, in_store)
    rep = store.forget_users(in_store) if in_store else None
    fp = rep.fingerprint if rep is not None else store.fingerprint()
    for d, st in folded.items():
        metrics = {**st.metrics, "lineage": {**dict(st.metrics.get("lineage") or {}), "forgotten_users": True}}
        out = materialize(st, drop_users=ids, data_fingerprint=fp, model_version=new_model_version(), metrics=metrics)
        out.degrees = _without_holders(st, held)
        out.save(d)
        log.info("%s: rewritten without %d user(s)", d, len(ids))
    return ForgetReport(ids, rep is not None and rep.changed, [str(d) for d in folded], removed, fp)
