"""Shared output of the benchmark scripts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def report(result: dict[str, Any], out: str | None) -> None:
    """Print ``result`` as JSON and, with ``out``, also write it there."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")


def replace_between(doc: str, mark: str, body: str) -> str:
    """``doc`` with the text between ``<!-- mark:begin -->`` and ``<!-- mark:end -->`` replaced by ``body`` (both
    markers appended at the end when the document has none yet)."""
    begin, end = f"<!-- {mark}:begin -->", f"<!-- {mark}:end -->"
    block = f"{begin}\n{body}\n{end}"
    if begin in doc and end in doc:
        return doc[: doc.index(begin)] + block + doc[doc.index(end) + len(end) :]
    return doc.rstrip("\n") + "\n\n" + block + "\n"
