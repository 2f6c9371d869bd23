"""The Cypher queries of ``docs/queries.md``, read from that file, for notebooks and scripts.

``docs/queries.md`` is the one place the data scientists' queries are written
down (and ``tests/test_queries.py`` runs every one of them on the real server).
Each query there is a ``### N. Title`` heading followed by a ``cypher`` code block
whose first line is ``// params: {...}`` (JSON). :func:`documented_queries` parses
them; :meth:`DocumentedQuery.run` runs one on a Neo4j store with the documented
parameters, any of which can be replaced (the documented values name the
synthetic data set; MovieLens needs e.g. ``user="1"``, ``category="Sci-Fi"``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pandas as pd

from kgrec.errors import KgrecError

if TYPE_CHECKING:
    from kgrec.graph.neo4j_store import Neo4jStore

_HEADING = re.compile(r"^### (\d+)\. (.+?)\n```cypher\n(.*?)```", flags=re.DOTALL | re.MULTILINE)
_PARAMS = "// params:"


def queries_doc_path() -> Path:
    """Where ``docs/queries.md`` is in a kgrec checkout (it is not part of an installed wheel)."""
    return Path(__file__).resolve().parents[2] / "docs" / "queries.md"


class DocumentedQuery(NamedTuple):
    """One query of ``docs/queries.md``."""

    #: its number in the document (1, 2, ...)
    number: int
    #: the heading without the number, e.g. "A user's top categories"
    title: str
    #: the parameters the document runs it with (from the ``// params:`` line)
    params: dict[str, Any]
    #: the Cypher text, without the params line
    cypher: str

    def run(self, store: Neo4jStore, **params: Any) -> pd.DataFrame:
        """Run on ``store`` (read-only) with the documented parameters, ``params`` replacing some.

        Only parameters the query uses are taken from ``params``; others are ignored,
        so one set of values (``user=…, item=…, category=…``) serves every query.

        Returns:
            The query's result as a DataFrame, columns named by its ``RETURN`` clause.

        Raises:
            StoreError: a Cypher error, or a write attempted (refused).
        """
        values = {k: params.get(k, v) for k, v in self.params.items()}
        return store.cypher(self.cypher, **values)


def documented_queries(path: str | Path | None = None) -> list[DocumentedQuery]:
    """The queries of ``docs/queries.md``, in document order.

    Args:
        path: the Markdown file (default: ``docs/queries.md`` of this checkout).

    Raises:
        KgrecError: the file is missing, holds no query, or a query lacks its
            ``// params: {...}`` line or has invalid JSON there.
    """
    p = Path(path) if path is not None else queries_doc_path()
    if not p.is_file():
        raise KgrecError(
            f"{p}: no such file; documented_queries() reads docs/queries.md of a kgrec checkout: pass path= to that file"
        )
    out = []
    for number, title, body in _HEADING.findall(p.read_text(encoding="utf-8")):
        first, _, cypher = body.partition("\n")
        if not first.startswith(_PARAMS):
            raise KgrecError(
                f"{p}: query {number} ({title}) starts with {first!r}; expected a '{_PARAMS} {{...}}' line"
            )
        try:
            params = json.loads(first.removeprefix(_PARAMS))
        except json.JSONDecodeError as e:
            raise KgrecError(f"{p}: query {number} ({title}): the params line is not valid JSON ({e.msg})") from None
        out.append(DocumentedQuery(int(number), title.strip(), params, cypher))
    if not out:
        raise KgrecError(
            f"{p}: no '### N. Title' heading followed by a ```cypher block; expected the format of docs/queries.md"
        )
    return out


def run_documented_queries(store: Neo4jStore, path: str | Path | None = None, **params: Any) -> dict[str, pd.DataFrame]:
    """Run every documented query on ``store``; see :meth:`DocumentedQuery.run` for ``params``.

    Returns:
        ``"N. Title"`` → result DataFrame, in document order.
    """
    return {f"{q.number}. {q.title}": q.run(store, **params) for q in documented_queries(path)}
