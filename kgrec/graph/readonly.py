"""What ``kgrec query`` / ``Neo4jStore.cypher`` let through: what a read transaction of a non-admin reader may do.

Neo4j Community edition has no roles (``GRANT``/``CREATE ROLE`` are Enterprise features), so kgrec cannot connect
as a reader there; and a read transaction alone still runs ``TERMINATE TRANSACTIONS`` (which kills other clients'
transactions) and DBMS procedures such as ``db.clearQueryCaches()``. So a query is checked twice before it runs:

1. :func:`check_read_only` (here, no server needed) reads the query's tokens, with comments, strings and
   backtick-quoted names taken apart first so that they can neither hide a keyword nor cause a false alarm. It
   refuses administration and write clauses (:data:`REFUSED_KEYWORDS`: ``SHOW``, ``TERMINATE``, ``USE``, ``CREATE``,
   ``MERGE``, ``SET``, ``DELETE``, ``REMOVE``, ``FOREACH``, ``LOAD CSV``, ``… IN TRANSACTIONS``, ``GRANT`` …), more
   than one statement, and every ``CALL`` of a procedure not in :data:`ALLOWED_PROCEDURES`. ``CALL { … }``
   subqueries are allowed; their bodies are checked like the rest.
2. The store then runs ``EXPLAIN`` on it (nothing executes) and refuses it unless the server classifies it as a
   read-only query (query type ``r``); the query itself then runs in a read transaction.
"""

from __future__ import annotations

import re

from kgrec.errors import StoreError

#: Procedures a reader may CALL: schema introspection and the vector/full-text index searches.
ALLOWED_PROCEDURES = frozenset(
    {
        "db.labels",
        "db.relationshiptypes",
        "db.propertykeys",
        "db.schema.visualization",
        "db.schema.nodetypeproperties",
        "db.schema.reltypeproperties",
        "db.index.vector.querynodes",
        "db.index.vector.queryrelationships",
        "db.index.fulltext.querynodes",
        "db.index.fulltext.queryrelationships",
    }
)

#: Keywords that start a write, a schema or administration command, or another database/transaction: refused
#: wherever they occur as a keyword (not as a property key, label, map key, parameter or quoted name).
REFUSED_KEYWORDS = frozenset(
    {
        "create",
        "merge",
        "set",
        "delete",
        "detach",
        "remove",
        "foreach",
        "load",
        "drop",
        "alter",
        "rename",
        "grant",
        "deny",
        "revoke",
        "show",
        "terminate",
        "use",
        "start",
        "stop",
        "enable",
        "deallocate",
        "reallocate",
    }
)

#: The write clauses among them (their refusal says the query writes).
WRITE_KEYWORDS = frozenset({"create", "merge", "set", "delete", "detach", "remove", "foreach", "load"})

_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<line_comment>//[^\n]*)
      | (?P<block_comment>/\*.*?(?:\*/|\Z))
      | (?P<string>'(?:[^'\\]|\\.)*(?:'|\Z)|"(?:[^"\\]|\\.)*(?:"|\Z))
      | (?P<quoted>`(?:[^`]|``)*(?:`|\Z))
      | (?P<word>[^\W\d]\w*)
      | (?P<number>\d[\w.]*)
      | (?P<other>.)""",
    re.S | re.X,
)


def _tokens(query: str) -> list[tuple[str, str]]:
    """(kind, text) for the query's tokens: ``word``, ``name`` (a backtick-quoted name, unquoted), ``string``,
    ``number`` or ``other`` (one punctuation character); whitespace and comments are dropped."""
    out = []
    for m in _TOKEN.finditer(query):
        kind = m.lastgroup or "other"
        text = m.group()
        if (
            kind == "block_comment"
            and not text.endswith("*/")
            or kind == "string"
            and (len(text) < 2 or text[-1] != text[0])
            or kind == "quoted"
            and (len(text) < 2 or not text.endswith("`"))
        ):
            raise _refuse(
                f"an unterminated {kind.replace('_', ' ').replace('quoted', 'quoted name')} at character {m.start()}",
                query,
            )
        if kind in {"ws", "line_comment", "block_comment"}:
            continue
        if kind == "quoted":
            kind, text = "name", text[1:-1].replace("``", "`")
        out.append((kind, text))
    return out


def _refuse(what: str, query: str) -> StoreError:
    shown = " ".join(query.split())
    shown = shown if len(shown) <= 120 else shown[:117] + "..."
    return StoreError(
        f"refused: {what}; kgrec query / store.cypher run only what a read transaction of a non-admin reader may do "
        f"(allowed clauses and procedures: docs/queries.md); query: {shown!r}"
    )


def check_read_only(query: str) -> None:
    """Raise :class:`~kgrec.errors.StoreError` ("refused: …") unless ``query`` is a plain read query (see module doc)."""
    toks = _tokens(query)
    if not toks:
        raise _refuse("the query is empty", query)
    for n, (kind, text) in enumerate(toks):
        prev = toks[n - 1][1] if n else ""
        nxt = toks[n + 1][1] if n + 1 < len(toks) else ""
        if kind == "other" and text == ";" and any(k != "other" or t != ";" for k, t in toks[n + 1 :]):
            raise _refuse("more than one statement", query)
        if kind != "word":
            continue
        if prev in {".", ":", "$"} or (nxt == ":" and prev in {"{", ","}):
            continue  # a property key, label, parameter or map key, not a keyword
        word = text.lower()
        if word in WRITE_KEYWORDS:
            raise _refuse(f"this query writes to the database: {text.upper()} is not allowed", query)
        if word in REFUSED_KEYWORDS:
            raise _refuse(f"{text.upper()} is not allowed (administration, or another database or transaction)", query)
        if word == "transactions" and prev.lower() == "in":
            raise _refuse("CALL { … } IN TRANSACTIONS is not allowed (it commits batches of its own)", query)
        if word == "call":
            if nxt in {"{", "("}:
                continue  # a subquery: CALL { … } or CALL (x) { … }
            name = _procedure_name(toks, n + 1)
            if name.lower() not in ALLOWED_PROCEDURES:
                raise _refuse(f"CALL {name or '…'} is not an allowed procedure", query)


def _procedure_name(toks: list[tuple[str, str]], start: int) -> str:
    """The dotted procedure name that starts at ``toks[start]`` (quoted parts unquoted)."""
    parts: list[str] = []
    n = start
    while n < len(toks) and toks[n][0] in {"word", "name"}:
        parts.append(toks[n][1])
        if n + 1 < len(toks) and toks[n + 1] == ("other", "."):
            n += 2
            continue
        break
    return ".".join(parts)
