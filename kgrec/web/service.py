"""The read-only service behind the page and the API: one loaded model, one store, cached answers."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import pandas as pd

from kgrec.errors import DataValidationError, KgrecError
from kgrec.graph.store import GraphStore, IngestReport, is_neo4j_uri, model_dir, open_store
from kgrec.loaders import schema as S
from kgrec.web.cache import LRUCache
from kgrec.web.config import WebConfig
from kgrec.web.events import SOURCE, Batch
from kgrec.web.models import (
    EventsOut,
    ExplanationOut,
    Health,
    ItemHit,
    ItemSearchOut,
    RecommendationOut,
    RecommendationsOut,
    to_json,
)

if TYPE_CHECKING:
    from kgrec.fusion.explanation import Explanation
    from kgrec.fusion.recommender import Recommender

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    """A batch waiting for its append (:meth:`RecService.append_events`), then its answer."""

    batch: Batch
    done: bool = False
    result: EventsOut | None = None
    error: BaseException | None = None


@dataclass
class StaffReason:
    """One recommendation as the support page shows it: its reason in one third-person sentence and how strong it is."""

    rank: int
    item: str
    title: str
    reason: str
    strength: str  # "strong", "medium" or "weak" (the reason's path score next to the list's strongest)
    kind: str | None
    note: str | None


def strength_of(ratio: float) -> str:
    """A path's score relative to the strongest one it is shown with, in words: strong (>= 2/3), medium (>= 1/3),
    weak (the list's reasons are compared with each other, a detail's paths with its first)."""
    return "strong" if ratio >= 2 / 3 else "medium" if ratio >= 1 / 3 else "weak"


def explanation_dict(e: Explanation) -> dict[str, object]:
    """``e.to_dict()`` (the JSON contract, field for field) built directly from the dataclasses.

    ``Explanation.to_dict`` goes through :func:`dataclasses.asdict`, a recursive deep copy of every path, node
    and number: 1.5-3 ms of an explanation's ~10 ms in the web's profile of an uncached list. The values here
    are the same objects (strings and floats), in fresh lists and dicts.
    """
    return {
        "user": e.user,
        "item": e.item,
        "title": e.title,
        "rank": e.rank,
        "score": e.score,
        "k": e.k,
        "paths": [
            {
                "score": p.score,
                "sentence": p.sentence,
                "kind": p.kind,
                "nodes": [{"type": n.type, "id": n.id, "name": n.name} for n in p.nodes],
                "relations": list(p.relations),
            }
            for p in e.paths
        ],
        "attribution": dict(e.attribution),
        "interacted": e.interacted,
        "gap_to_k": e.gap_to_k,
        "message": e.message,
        "total_paths": e.total_paths,
    }


#: longest search query accepted
MAX_QUERY = 200
#: largest long-tail penalty the page and the API accept (the Python API has no upper bound)
MAX_LONG_TAIL = 10.0


class RecService:
    """Recommendations, explanations and item search over one model and one store.

    It reads, and writes only through :meth:`append_events` (``POST /api/events``, behind the
    write token): nothing here runs Cypher given by a caller. Answers are cached (LRU) with
    the versions they were computed at: the store's data version (:meth:`live_version`) and
    the user's live key (:meth:`Recommender.live_key`), so a repeated question costs a
    dictionary lookup and no answer is served from the cache once that user's data changed.
    """

    def __init__(self, config: WebConfig, store: GraphStore, rec: Recommender) -> None:
        self.config = config
        self.store = store
        self.rec = rec
        self.version = rec.model_version
        self.store_kind = "neo4j" if is_neo4j_uri(store.location) else "embedded"
        # (store fingerprint, the user's live key, JSON answer), keyed by (model version, user, the question)
        self._recs: LRUCache[tuple[str, str, bytes]] = LRUCache(config.cache_size)
        self._expl: LRUCache[tuple[str, str, bytes]] = LRUCache(config.cache_size)
        self._served = {"recommendations": 0, "explanations": 0}
        self._computed = {"recommendations": 0, "explanations": 0}
        table = rec.items_table
        self._item_ids: list[str] = [str(x) for x in table["item"].tolist()]
        self._item_titles: list[str] = [rec.title(i) for i in self._item_ids]
        self._folded: list[str] = [t.casefold() for t in self._item_titles]
        #: items known to be in the store: the model's, plus those an event check found there
        self._store_items: set[str] = set(self._item_ids)
        self._live_lock = threading.Lock()
        # group commit of POST /api/events: batches queued while one append runs
        self._append_cv = threading.Condition()
        self._append_queue: list[_Pending] = []
        self._appending = False
        self._live_busy = False
        self._live_failing = False
        self._live_gen = 0  # moved on by every append through this process
        self._live = self._read_fingerprint() or ""
        self._live_checked = time.monotonic()
        self.warm_up()

    @classmethod
    def open(cls, config: WebConfig) -> RecService:
        """Open the configured store, load the model once and check it against the store."""
        from kgrec.fusion.recommender import Recommender

        t0 = time.perf_counter()
        store = open_store(config.store, user=config.neo4j_user, database=config.neo4j_database)
        try:
            rec = Recommender.load(model_dir(store, config.model), store=store)
        except BaseException:
            store.close()
            raise
        svc = cls(config, store, rec)
        log.info(
            "model %s loaded from %s store %s in %.1f s",
            svc.version,
            svc.store_kind,
            store.location,
            time.perf_counter() - t0,
        )
        return svc

    def warm_up(self) -> None:
        """Build the lazy indexes (path index, node offsets) once, before requests arrive in parallel."""
        users = self.rec.vocabs.user.ids
        if len(users) == 0:
            return
        top = self.rec.recommend(str(users[0]), 1)
        if len(top):
            self.rec.explain(str(users[0]), str(top["item"].iloc[0]), self.store, top=1)

    def close(self) -> None:
        self.store.close()

    # ------------------------------------------------------------------ the live data version
    def _read_fingerprint(self) -> str | None:
        """The store's fingerprint, or None when the store does not answer (logged once until it answers again)."""
        try:
            fp = self.store.fingerprint()
        except Exception as e:  # noqa: BLE001 - any store failure: answers stay keyed by the version read last
            from kgrec.web.models import store_unavailable_detail

            if not self._live_failing:
                log.warning(
                    "cannot read the store's data version (answers stay keyed by the last one read): %s",
                    store_unavailable_detail(e),
                )
            self._live_failing = True
            return None
        if self._live_failing:
            log.info("the store's data version can be read again")
        self._live_failing = False
        return fp

    def live_version(self) -> str:
        """The store's data version, part of every cache key: its fingerprint as this process read it last.

        An append through this process sets it at once. Changes made elsewhere (another worker, ``kgrec
        ingest --append``) are read in the background at most every ``config.live_check_s`` seconds
        (0: synchronously, on every call), so the request that notices them is not delayed; when the
        store does not answer, the last version read stays in use.
        """
        every = self.config.live_check_s
        if every <= 0:
            self._refresh_live()
        elif time.monotonic() - self._live_checked >= every and not self._live_busy:
            with self._live_lock:
                if self._live_busy:
                    return self._live
                self._live_busy = True
            threading.Thread(target=self._refresh_live, name="kgrec-live-version", daemon=True).start()
        return self._live

    def _refresh_live(self) -> None:
        gen = self._live_gen
        try:
            fp = self._read_fingerprint()
            # an append through this process while the read ran knows better than the read
            with self._live_lock:
                if fp and fp != self._live and gen == self._live_gen:
                    self._data_changed(fp)
        finally:
            self._live_checked = time.monotonic()
            self._live_busy = False

    def _data_changed(self, fingerprint: str) -> None:
        """Another process changed the store's data (the store objects themselves follow it on their next read).

        When that was ``kgrec forget`` (or a retrain), the model folder holds a new model for the new data: the
        model is read again and every cached answer dropped, so nothing of a forgotten user stays in memory."""
        log.info("store data changed elsewhere: %s -> %s", self._live[:12], fingerprint[:12])
        self._live = fingerprint
        try:
            self.rec.fresh()  # reads the rewritten model folder when the old model no longer fits the store
        except KgrecError as e:
            log.warning("the model does not fit the store's new data (%s); answers will say so", e)
        if self.rec.model_version != self.version:
            log.info("model %s replaced by %s: cached answers dropped", self.version, self.rec.model_version)
            self.version = self.rec.model_version
            self._recs.clear()
            self._expl.clear()

    # ------------------------------------------------------------------ writing (POST /api/events)
    def unknown_items(self, events: Batch, limit: int = 3) -> list[tuple[int, str]]:
        """(row from 1, item) of the first ``limit`` events naming an item the store does not hold."""
        out: list[tuple[int, str]] = []
        absent: set[str] = set()
        for row, item in enumerate(events.events["item"].tolist(), start=1):
            if item in self._store_items:
                continue
            if item not in absent:
                if self.store.has_item(item):
                    self._store_items.add(item)
                    continue
                absent.add(item)
            out.append((row, item))
            if len(out) == limit:
                break
        return out

    def append_events(self, events: Batch) -> EventsOut:
        """Append a checked batch to the store (``store.append``) and move the live version on.

        One append runs at a time per process; batches that arrive while one runs are appended together next
        (group commit, :meth:`_append_group`): each request still gets its own answer, and ``changed`` says
        whether the append that took its batch changed the store.

        Raises:
            DataValidationError: an event names an item the store does not hold and
                ``config.allow_unknown_items`` is off (nothing is appended).
        """
        if not len(events):
            return EventsOut(accepted=0, changed=False, fingerprint=self.live_version())
        if not self.config.allow_unknown_items:
            unknown = self.unknown_items(events)
            if unknown:
                row, item = unknown[0]
                more = ", ".join(f"{i!r} (row {r})" for r, i in unknown[1:])
                raise DataValidationError(
                    f"{SOURCE.where(row - 1, 'item')}: item {item!r} is not in the store"
                    + (f" (also unknown: {more})" if more else "")
                    + "; expected an item the store holds: add new items first (kgrec ingest --append --items-file "
                    "…), or start the server with allow_unknown_items to create them with their id as title. "
                    "Nothing was appended"
                )
        me = _Pending(events)
        with self._append_cv:
            self._append_queue.append(me)
            while self._appending and not me.done:
                self._append_cv.wait()
            lead = not me.done
            if lead:  # no append in flight: this thread appends every batch queued meanwhile, its own included
                group, self._append_queue = self._append_queue, []
                self._appending = True
        if lead:
            try:
                self._append_group(group)
            finally:
                with self._append_cv:
                    self._appending = False
                    for p in group:
                        p.done = True
                    self._append_cv.notify_all()
        if me.error is not None:
            raise me.error
        assert me.result is not None
        return me.result

    def _append_group(self, group: list[_Pending]) -> None:
        """Append the batches of ``group`` (in arrival order) and set each one's result or error.

        Several batches go to the store as one append (group commit: one snapshot or transaction for all of them,
        which the store folds exactly as it folds successive appends: a user and item in two batches keep the
        later timestamp); if the store refuses the whole, each is appended on its own, so that only the batch
        it refuses is refused.
        """
        if len(group) > 1:
            merged = replace(
                group[0].batch.dataset,
                interactions=pd.concat([p.batch.dataset.interactions for p in group], ignore_index=True),
            )
            try:
                report = self._store_append(merged, sum(len(p.batch) for p in group), len(group))
            except DataValidationError:
                pass  # below, one by one
            except Exception as e:  # noqa: BLE001 - the store's error is every request's answer (e.g. 503)
                for p in group:
                    p.error = e
                return
            else:
                for p in group:
                    p.result = EventsOut(accepted=len(p.batch), changed=report.changed, fingerprint=report.fingerprint)
                return
        for p in group:
            try:
                report = self._store_append(p.batch.dataset, len(p.batch), 1)
            except Exception as e:  # noqa: BLE001 - this request's answer
                p.error = e
            else:
                p.result = EventsOut(accepted=len(p.batch), changed=report.changed, fingerprint=report.fingerprint)

    def _store_append(self, data: S.Dataset, events: int, requests: int) -> IngestReport:
        report = self.store.append(data, allow_unknown_items=self.config.allow_unknown_items)
        with self._live_lock:
            self._live_gen += 1
            self._live = report.fingerprint
            self._live_checked = time.monotonic()
        if self.config.allow_unknown_items:
            self._store_items.update(data.interactions[S.ITEM].tolist())
        log.info(
            "appended %d events of %d request%s (%s): data %s",
            events,
            requests,
            "" if requests == 1 else "s",
            "changed" if report.changed else "no change",
            report.fingerprint[:12],
        )
        return report

    # ------------------------------------------------------------------ answers
    def cache_counts(self) -> dict[str, dict[str, int]]:
        """Per kind of answer (``recommendations``, ``explanations``): how many were served from the cache
        (``hits``), how many computed (``misses``), and the entries held."""
        return {
            kind: {"hits": self._served[kind], "misses": self._computed[kind], "entries": len(cache)}
            for kind, cache in (("recommendations", self._recs), ("explanations", self._expl))
        }

    def health(self) -> Health:
        return Health(
            status="ok",
            model_version=self.version,
            store=self.store_kind,
            users=len(self.rec.vocabs.user),
            items=len(self.rec.vocabs.item),
        )

    # Cached answers are kept as JSON bytes, in a tuple with the two versions they were computed at (the store's
    # fingerprint and the user's live key): untracked objects only, so a full cache adds nothing to the garbage
    # collector's work (a cache of model objects made 1 s collection pauses).
    def _cached(
        self, key: tuple[Hashable, ...], user: str, *, thorough: bool, versions: tuple[str, str] | None = None
    ) -> bytes | None:
        """The cached answer for ``key`` if it still holds for the store's data now, else None.

        An answer computed at the store's current fingerprint is served as it is (no store read: the event
        loop's path). One computed before a change is served only after ``thorough`` checking that the user's
        live key (:meth:`Recommender.live_key`: model, catalogue, the user's history in the store) is still
        the one it was computed at; then it is kept for the new fingerprint, so other users' answers survive
        one user's events. ``versions``: the fingerprint and the user's live key, read by the caller just
        before (:meth:`_versions`; a list reads them once for all its explanations).
        """
        kind = str(key[0])
        cache = self._recs if kind == "recommendations" else self._expl
        entry = cache.get(key)
        if entry is None:
            return None
        fingerprint, live_key, body = entry
        now = self.live_version() if versions is None else versions[0]
        if fingerprint != now:
            if not thorough:
                return None
            if (self.rec.live_key(user) if versions is None else versions[1]) != live_key:
                cache.discard(key, entry)  # the user's data changed: it will not hold again (no second check)
                return None
            cache.put(key, (now, live_key, body))
        self._served[kind] += 1
        return body

    def _list_key(
        self, user: str, k: int, diversity: float, long_tail: float, lang: str, by: str = "vectors"
    ) -> tuple[Hashable, ...]:
        return ("recommendations", self.version, user, k, diversity, long_tail, lang, by)

    def _explanation_key(
        self, user: str, item: str, k: int, top: int, lang: str, listed: bool = False
    ) -> tuple[Hashable, ...]:
        """``listed``: the explanation of a row of the user's list (a recommendation whatever its rank by score,
        e.g. brought in by the re-ranker), not the answer to "why (not) this item"."""
        return ("explanations", self.version, user, item, k, top, lang, listed)

    def _versions(self, user: str) -> tuple[str, str]:
        """The store fingerprint and the user's live key, read before an answer is computed (a change meanwhile
        leaves the answer keyed by what it was computed from, and the next question computes it again)."""
        return self.live_version(), self.rec.live_key(user)

    def cached_recommendations_json(
        self, user: str, k: int, diversity: float = 0.0, long_tail: float = 0.0, lang: str = "en", by: str = "vectors"
    ) -> bytes | None:
        """The cached answer when it was computed at the store's current data (the event loop's check: no store read)."""
        return self._cached(self._list_key(user, k, diversity, long_tail, lang, by), user, thorough=False)

    def cached_explanation_json(self, user: str, item: str, k: int, top: int, lang: str = "en") -> bytes | None:
        """The cached answer when it was computed at the store's current data (the event loop's check: no store read)."""
        return self._cached(self._explanation_key(user, item, k, top, lang), user, thorough=False)

    def _stale(self, key: tuple[Hashable, ...]) -> bool:
        cache = self._recs if key[0] == "recommendations" else self._expl
        entry = cache.peek(key)
        return entry is not None and entry[0] != self._live

    def stale_recommendations(
        self, user: str, k: int, diversity: float = 0.0, long_tail: float = 0.0, lang: str = "en", by: str = "vectors"
    ) -> bool:
        """Whether an answer is cached that was computed at an older data version (it holds if the user's live key
        is unchanged: :meth:`rechecked_recommendations_json`). No store read: for the event loop."""
        return self._stale(self._list_key(user, k, diversity, long_tail, lang, by))

    def stale_explanation(self, user: str, item: str, k: int, top: int, lang: str = "en") -> bool:
        """As :meth:`stale_recommendations`, for an explanation."""
        return self._stale(self._explanation_key(user, item, k, top, lang))

    def rechecked_recommendations_json(
        self, user: str, k: int, diversity: float = 0.0, long_tail: float = 0.0, lang: str = "en", by: str = "vectors"
    ) -> bytes | None:
        """The cached answer if the user's live key is the one it was computed at (one store read), else None
        (and the entry is dropped). Cheap next to computing an answer, so the API runs it outside the compute
        threads' queue: cached answers keep flowing while events make the cache's data version move."""
        return self._cached(self._list_key(user, k, diversity, long_tail, lang, by), user, thorough=True)

    def rechecked_explanation_json(self, user: str, item: str, k: int, top: int, lang: str = "en") -> bytes | None:
        """As :meth:`rechecked_recommendations_json`, for an explanation."""
        return self._cached(self._explanation_key(user, item, k, top, lang), user, thorough=True)

    def recommendations_json(
        self, user: str, k: int, diversity: float = 0.0, long_tail: float = 0.0, lang: str = "en", by: str = "vectors"
    ) -> bytes:
        """:meth:`recommendations` as (escaped) JSON bytes."""
        hit = self._cached(self._list_key(user, k, diversity, long_tail, lang, by), user, thorough=True)
        return hit if hit is not None else to_json(self._recommendations(user, k, diversity, long_tail, lang, by))

    def explanation_json(self, user: str, item: str, k: int, top: int, lang: str = "en") -> bytes:
        """:meth:`explanation` as (escaped) JSON bytes."""
        hit = self._cached(self._explanation_key(user, item, k, top, lang), user, thorough=True)
        return hit if hit is not None else to_json(self._explanation(user, item, k, top, lang))

    def recommendations(
        self, user: str, k: int, diversity: float = 0.0, long_tail: float = 0.0, lang: str = "en", by: str = "vectors"
    ) -> RecommendationsOut:
        """Top-``k`` items for ``user``, each with its top explanation sentence (in ``lang``, :mod:`kgrec.messages`);
        ``diversity`` / ``long_tail`` re-rank the list (:mod:`kgrec.fusion.rerank`) and a moved-up item carries a ``note``.

        Raises:
            UnknownIdError: the model does not know ``user``.
            ConfigError: ``diversity`` or ``long_tail`` out of range.
        """
        hit = self._cached(self._list_key(user, k, diversity, long_tail, lang, by), user, thorough=True)
        return (
            RecommendationsOut.model_validate_json(hit)
            if hit is not None
            else self._recommendations(user, k, diversity, long_tail, lang, by)
        )

    def explanation(self, user: str, item: str, k: int, top: int, lang: str = "en") -> ExplanationOut:
        """Why ``item`` is (or is not) in ``user``'s top ``k``: the ``top`` strongest paths (sentences in ``lang``).

        Raises:
            UnknownIdError: the model does not know ``user`` or ``item``.
        """
        hit = self._cached(self._explanation_key(user, item, k, top, lang), user, thorough=True)
        return (
            ExplanationOut.model_validate_json(hit) if hit is not None else self._explanation(user, item, k, top, lang)
        )

    def _recommendations(
        self, user: str, k: int, diversity: float = 0.0, long_tail: float = 0.0, lang: str = "en", by: str = "vectors"
    ) -> RecommendationsOut:
        from kgrec.fusion.explanation import headline
        from kgrec.fusion.rerank import check_by, check_options, note

        key = self._list_key(user, k, diversity, long_tail, lang, by)
        versions = self._versions(user)
        diversity, long_tail = check_options(diversity, long_tail)
        by = check_by(by)
        df = self.rec.recommend(user, k, diversity=diversity, long_tail=long_tail, diversity_by=by)
        ids = df["item"].tolist()
        expl = self._explanations(user, ids, k, self.config.top_paths, lang, versions)
        promoted = df["promoted"].tolist() if "promoted" in df else [False] * len(df)
        items = []
        for item, rank, score, up in zip(ids, df["rank"].tolist(), df["score"].tolist(), promoted, strict=False):
            e = expl[item]
            first = e.paths[0] if e.paths else None
            items.append(
                RecommendationOut(
                    rank=int(rank),
                    item=item,
                    title=self.rec.title(item),
                    score=float(score),
                    explanation=headline(e),
                    kind=first.kind if first else None,
                    note=note(bool(up), diversity, long_tail, by),
                )
            )
        out = RecommendationsOut(
            user=user,
            k=k,
            model_version=self.version,
            items=items,
            diversity=diversity,
            long_tail=long_tail,
            diversity_by=by,
        )
        self._recs.put(key, (*versions, to_json(out)))
        self._computed["recommendations"] += 1
        return out

    def _explanations(
        self, user: str, items: list[str], k: int, top: int, lang: str, versions: tuple[str, str]
    ) -> dict[str, ExplanationOut]:
        """The explanations of a list's items: cached ones as they are, the others in one batch
        (:meth:`Recommender.explain_many`: the user refreshed and their history read once), then cached."""
        out: dict[str, ExplanationOut] = {}
        todo: list[str] = []
        for item in items:
            key = self._explanation_key(user, item, k, top, lang, listed=True)
            hit = self._cached(key, user, thorough=True, versions=versions)
            if hit is not None:
                out[item] = ExplanationOut.model_validate_json(hit)
            else:
                todo.append(item)
        if todo:
            for item, e in zip(
                todo, self.rec.explain_many(user, todo, self.store, top=top, k=k, lang=lang, listed=True), strict=True
            ):
                out[item] = self._keep_explanation(
                    self._explanation_key(user, item, k, top, lang, listed=True), explanation_dict(e), versions
                )
        return out

    def _keep_explanation(
        self, key: tuple[Hashable, ...], answer: dict[str, object], versions: tuple[str, str]
    ) -> ExplanationOut:
        out = ExplanationOut.model_validate(answer)
        self._expl.put(key, (*versions, to_json(out)))
        self._computed["explanations"] += 1
        return out

    def _explanation(self, user: str, item: str, k: int, top: int, lang: str = "en") -> ExplanationOut:
        versions = self._versions(user)
        e = self.rec.explain(user, item, self.store, top=top, k=k, lang=lang)
        return self._keep_explanation(self._explanation_key(user, item, k, top, lang), explanation_dict(e), versions)

    # ------------------------------------------------------------------ the support page's words
    def example_users(self, n: int = 5) -> list[str]:
        """The first ``n`` user ids the model knows (shown as a hint and when an id is unknown)."""
        return [str(x) for x in self.rec.vocabs.user.ids[:n].tolist()]

    def recent_history(self, user: str, n: int = 5) -> list[str]:
        """Titles of the ``n`` items the customer interacted with that weigh most in their recent interests."""
        from kgrec.fusion.whynot import recent_titles
        from kgrec.web.models import MAX_TITLE_CHARS, clip

        return [clip(t, MAX_TITLE_CHARS) for t in recent_titles(self.rec.state, self.rec.user_number(user), n)]

    def verb(self, lang: str = "en") -> str:
        from kgrec.messages import messages

        return messages(lang).verb(self.rec.config.explain.interaction_verb)

    def staff_paths(self, e: ExplanationOut, lang: str = "en") -> list[tuple[str, str, str]]:
        """(sentence, strength, kind) of each path of ``e`` for staff: third person; for an item that is not
        recommended the sentences are already links (kgrec.fusion.explain), kept as they are."""
        from kgrec.fusion.whynot import staff_sentence
        from kgrec.messages import messages

        m, verb = messages(lang), self.verb(lang)
        best = max((p.score for p in e.paths), default=0.0)
        out = []
        for p in e.paths:
            text = p.sentence if e.rank > e.k else staff_sentence(p, verb, m)
            out.append((text, strength_of(p.score / best if best > 0 else 0.0), p.kind))
        return out

    def staff_recommendations(self, recs: RecommendationsOut, lang: str = "en") -> list[StaffReason]:
        """Each recommendation with one third-person reason; a history item that already explains an earlier
        item gives way to another of the item's strongest paths when it has one (varied reasons)."""
        from kgrec.fusion.whynot import staff_sentence
        from kgrec.messages import messages

        m, verb = messages(lang), self.verb(lang)
        used: set[str] = set()
        out: list[StaffReason] = []
        scores: list[float] = []
        for r in recs.items:
            e = self.explanation(recs.user, r.item, recs.k, self.config.top_paths, lang)
            if not e.paths:
                out.append(StaffReason(r.rank, r.item, r.title, e.message, "weak", None, r.note))
                continue
            anchor = [p.nodes[1].id if len(p.nodes) > 2 else p.nodes[-2].id for p in e.paths]
            pick = next((n for n, a in enumerate(anchor) if a not in used), 0)
            used.add(anchor[pick])
            p = e.paths[pick]
            out.append(StaffReason(r.rank, r.item, r.title, staff_sentence(p, verb, m), "", p.kind, r.note))
            scores.append(p.score)
        best = max(scores, default=0.0)
        for row, sc in zip([o for o in out if o.kind is not None], scores, strict=True):
            row.strength = strength_of(sc / best if best > 0 else 0.0)
        return out

    def search(self, q: str, limit: int = 20) -> ItemSearchOut:
        """Items whose id is ``q`` or whose title contains it (case-insensitive): id, prefix, then substring."""
        q = q.strip()
        if not q:
            raise ValueError("the search text is empty; type an item id or part of a title")
        if len(q) > MAX_QUERY:
            raise ValueError(f"the search text is {len(q)} characters long; at most {MAX_QUERY} are accepted")
        needle = q.casefold()
        exact: list[int] = []
        prefix: list[int] = []
        inside: list[int] = []
        for n, (ident, folded) in enumerate(zip(self._item_ids, self._folded, strict=False)):
            if ident == q:
                exact.append(n)
            elif folded.startswith(needle):
                prefix.append(n)
            elif needle in folded:
                inside.append(n)
        prefix.sort(key=lambda n: self._folded[n])
        inside.sort(key=lambda n: self._folded[n])
        hits = (exact + prefix + inside)[:limit]
        return ItemSearchOut(q=q, items=[ItemHit(item=self._item_ids[n], title=self._item_titles[n]) for n in hits])

    def resolve_item(self, text: str) -> list[ItemHit]:
        """The item(s) meant by an id or a title typed into the "why not?" box.

        An exact id, or a title equal to the text (case-insensitive), gives one item;
        otherwise every title containing the text (up to 10).
        """
        found = self.search(text, limit=10).items
        q = text.strip()
        exact = [h for h in found if h.item == q or h.title.casefold() == q.casefold()]
        return exact[:1] if exact else found
