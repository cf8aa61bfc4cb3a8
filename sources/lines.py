"""One-line messages: whitespace collapsed, and a text too long cut between words (marked `…`),
never in the middle of a word or a value."""

from __future__ import annotations

from typing import Any


def one_line(text: Any, limit: int = 300) -> str:
    """`text` on one line of at most `limit` characters (a longer one cut at a word, with `…`)."""
    line = " ".join(str(text if text is not None else "").split())
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"
