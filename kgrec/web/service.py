"""The read-only service behind the page and the API: one loaded model, one store, cached answers."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kgrec.graph.store import GraphStore, is_neo4j_uri, model_dir, open_store
from kgrec.web.cache import LRUCache
from kgrec.web.config import WebConfig
from kgrec.web.models import (
    ExplanationOut,
    Health,
    ItemHit,
    ItemSearchOut,
    RecommendationOut,
    RecommendationsOut,
    to_json,
)

if TYPE_CHECKING:
    from kgrec.fusion.recommender import Recommender

log = logging.getLogger(__name__)


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


#: longest search query accepted
MAX_QUERY = 200
#: largest long-tail penalty the page and the API accept (the Python API has no upper bound)
MAX_LONG_TAIL = 10.0


class RecService:
    """Recommendations, explanations and item search over one model and one store.

    It only reads: nothing here runs Cypher given by a caller or writes to the
    store. Answers are cached (LRU, keyed by the model version), so a repeated
    question costs a dictionary lookup.
    """

    def __init__(self, config: WebConfig, store: GraphStore, rec: Recommender) -> None:
        self.config = config
        self.store = store
        self.rec = rec
        self.version = rec.model_version
        self.store_kind = "neo4j" if is_neo4j_uri(store.location) else "embedded"
        self._recs: LRUCache[bytes] = LRUCache(config.cache_size)
        self._expl: LRUCache[bytes] = LRUCache(config.cache_size)
        table = rec.items_table
        self._item_ids: list[str] = [str(x) for x in table["item"].tolist()]
        self._item_titles: list[str] = [rec.title(i) for i in self._item_ids]
        self._folded: list[str] = [t.casefold() for t in self._item_titles]
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

    # ------------------------------------------------------------------ answers
    def health(self) -> Health:
        return Health(
            status="ok",
            model_version=self.version,
            store=self.store_kind,
            users=len(self.rec.vocabs.user),
            items=len(self.rec.vocabs.item),
        )

    # Cached answers are kept as JSON bytes: one untracked object per entry, so a full cache adds
    # nothing to the garbage collector's work (a cache of model objects made 1 s collection pauses).
    def cached_recommendations_json(
        self, user: str, k: int, diversity: float = 0.0, long_tail: float = 0.0, lang: str = "en"
    ) -> bytes | None:
        return self._recs.get((self.version, user, k, diversity, long_tail, lang))

    def cached_explanation_json(self, user: str, item: str, k: int, top: int, lang: str = "en") -> bytes | None:
        return self._expl.get((self.version, user, item, k, top, lang))

    def recommendations_json(
        self, user: str, k: int, diversity: float = 0.0, long_tail: float = 0.0, lang: str = "en"
    ) -> bytes:
        """:meth:`recommendations` as (escaped) JSON bytes."""
        hit = self.cached_recommendations_json(user, k, diversity, long_tail, lang)
        return hit if hit is not None else to_json(self._recommendations(user, k, diversity, long_tail, lang))

    def explanation_json(self, user: str, item: str, k: int, top: int, lang: str = "en") -> bytes:
        """:meth:`explanation` as (escaped) JSON bytes."""
        hit = self.cached_explanation_json(user, item, k, top, lang)
        return hit if hit is not None else to_json(self._explanation(user, item, k, top, lang))

    def recommendations(
        self, user: str, k: int, diversity: float = 0.0, long_tail: float = 0.0, lang: str = "en"
    ) -> RecommendationsOut:
        """Top-``k`` items for ``user``, each with its top explanation sentence (in ``lang``, :mod:`kgrec.messages`);
        ``diversity`` / ``long_tail`` re-rank the list (:mod:`kgrec.fusion.rerank`) and a moved-up item carries a ``note``.

        Raises:
            UnknownIdError: the model does not know ``user``.
            ConfigError: ``diversity`` or ``long_tail`` out of range.
        """
        hit = self.cached_recommendations_json(user, k, diversity, long_tail, lang)
        return (
            RecommendationsOut.model_validate_json(hit)
            if hit is not None
            else self._recommendations(user, k, diversity, long_tail, lang)
        )

    def explanation(self, user: str, item: str, k: int, top: int, lang: str = "en") -> ExplanationOut:
        """Why ``item`` is (or is not) in ``user``'s top ``k``: the ``top`` strongest paths (sentences in ``lang``).

        Raises:
            UnknownIdError: the model does not know ``user`` or ``item``.
        """
        hit = self.cached_explanation_json(user, item, k, top, lang)
        return (
            ExplanationOut.model_validate_json(hit) if hit is not None else self._explanation(user, item, k, top, lang)
        )

    def _recommendations(
        self, user: str, k: int, diversity: float = 0.0, long_tail: float = 0.0, lang: str = "en"
    ) -> RecommendationsOut:
        from kgrec.fusion.explanation import headline
        from kgrec.fusion.rerank import check_options, note

        diversity, long_tail = check_options(diversity, long_tail)
        df = self.rec.recommend(user, k, diversity=diversity, long_tail=long_tail)
        promoted = df["promoted"].tolist() if "promoted" in df else [False] * len(df)
        items = []
        for item, rank, score, up in zip(
            df["item"].tolist(), df["rank"].tolist(), df["score"].tolist(), promoted, strict=False
        ):
            e = self.explanation(user, item, k, self.config.top_paths, lang)
            first = e.paths[0] if e.paths else None
            items.append(
                RecommendationOut(
                    rank=int(rank),
                    item=item,
                    title=self.rec.title(item),
                    score=float(score),
                    explanation=headline(e),
                    kind=first.kind if first else None,
                    note=note(bool(up), diversity, long_tail),
                )
            )
        out = RecommendationsOut(
            user=user, k=k, model_version=self.version, items=items, diversity=diversity, long_tail=long_tail
        )
        self._recs.put((self.version, user, k, diversity, long_tail, lang), to_json(out))
        return out

    def _explanation(self, user: str, item: str, k: int, top: int, lang: str = "en") -> ExplanationOut:
        e = self.rec.explain(user, item, self.store, top=top, k=k, lang=lang)
        out = ExplanationOut.model_validate(e.to_dict())
        self._expl.put((self.version, user, item, k, top, lang), to_json(out))
        return out

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
