"""The texts the BERT encoder reads: item text and each user's behaviour text.

Item text: ``title. description. Categories: a, b. Keywords: x, y.``

User behaviour text: the user's free-text profile from the users file (if any),
then the user's interactions as text, newest first: the item titles, the tags the
user applied, and any interaction ``text`` (review, query, comment). It is cut at ``max_chars`` characters (the tokenizer then truncates
to the model's limit), so the most recent behaviour always fits.
"""

from __future__ import annotations

from kgrec.graph.hetero import Vocabularies
from kgrec.loaders import schema as S
from kgrec.loaders.schema import Dataset


def item_texts(ds: Dataset, vocabs: Vocabularies) -> list[str]:
    """One text per item, in item-number order."""
    items = ds.items.set_index(S.ITEM)
    cats = ds.item_categories.groupby(S.ITEM)[S.CATEGORY].agg(lambda s: ", ".join(s))
    kws = ds.item_keywords.groupby(S.ITEM)[S.KEYWORD].agg(lambda s: ", ".join(list(s)[:12]))
    out = []
    for it in vocabs.item.to_list():
        parts = []
        if it in items.index:
            title, desc = items.at[it, S.TITLE], items.at[it, S.DESCRIPTION]
            if title:
                parts.append(str(title))
            if desc:
                parts.append(str(desc))
        if it in cats.index:
            parts.append(f"Categories: {cats[it]}")
        if it in kws.index:
            parts.append(f"Keywords: {kws[it]}")
        out.append(". ".join(parts))
    return out


def _history_pieces(ds: Dataset, *, titles_too: bool = True) -> dict[str, list[str]]:
    """Each user's behaviour pieces, newest first: ``title: interaction text`` (``titles_too``) or the interaction
    texts alone (the user's own words)."""
    titles = dict(zip(ds.items[S.ITEM].tolist(), ds.items[S.TITLE].tolist()))
    # ties in time (one timestamp) in title order: neither item ids nor file order decide (kgrec.fusion.ties)
    it = ds.interactions.assign(_title=ds.interactions[S.ITEM].map(titles).fillna(""))
    it = it.sort_values([S.USER, S.TIMESTAMP, "_title", S.ITEM], ascending=[True, False, True, True], kind="stable")
    per_user: dict[str, list[str]] = {}
    for u, i, txt in zip(it[S.USER].tolist(), it[S.ITEM].tolist(), it[S.TEXT].tolist()):
        parts = per_user.setdefault(u, [])
        piece = (titles.get(i) or "") if titles_too else ""
        if txt:
            piece = f"{piece}: {txt}" if piece else str(txt)
        if piece:
            parts.append(piece)
    return per_user


def _texts(ds: Dataset, vocabs: Vocabularies, max_chars: int, *, titles_too: bool) -> list[str]:
    per_user = _history_pieces(ds, titles_too=titles_too)
    tags = ds.tags.groupby(S.USER)[S.TAG].agg(lambda s: ", ".join(dict.fromkeys(s)))
    profiles = {u: p for u, p in zip(ds.users[S.USER].tolist(), ds.users[S.PROFILE].tolist(), strict=True) if p}
    return [
        behaviour_text(per_user.get(u, []), tags[u] if u in tags.index else "", max_chars, profile=profiles.get(u, ""))
        for u in vocabs.user.to_list()
    ]


def user_texts(ds: Dataset, vocabs: Vocabularies, max_chars: int = 1500) -> list[str]:
    """One behaviour text per user, in user-number order (newest behaviour first)."""
    return _texts(ds, vocabs, max_chars, titles_too=True)


def own_texts(ds: Dataset, vocabs: Vocabularies, max_chars: int = 1500) -> list[str]:
    """One text per user of what is the user's own: the profile, the tags, the interaction texts (newest first), no
    item titles ('' for a user with none). With ``model.user_text = "compose"`` only these are encoded; the items'
    part of the behaviour comes from the item text vectors (:mod:`kgrec.encoders.compose`)."""
    return _texts(ds, vocabs, max_chars, titles_too=False)


def behaviour_text(pieces_newest_first: list[str], tags: str = "", max_chars: int = 1500, *, profile: str = "") -> str:
    """A behaviour text from its pieces (item titles, with any interaction text), newest first, the
    user's tags and profile line, cut at ``max_chars``: the form every user's text has in training."""
    text = f"{profile[:max_chars].rstrip()}. " if profile else ""
    text += f"Tags: {tags}. " if tags else ""
    acc = []
    size = len(text)
    for p in pieces_newest_first:
        if size + len(p) + 2 > max_chars:
            break
        acc.append(p)
        size += len(p) + 2
    return (text + "; ".join(acc)).strip()
