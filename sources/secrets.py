"""The process-wide secret registry: every credential this process sends or connects with is
masked wherever an error or a log line could show it.

The API clients register their keys here, and the warehouse setup its Postgres password;
`redact` is what every one-line error passes through before it is printed or stored.
"""

from __future__ import annotations

import threading
from typing import Iterable, Optional, Set

REDACTED = "***"
MIN_SECRET_LENGTH = 4
"""Shorter values are not masked: replacing every `ab` in a message would hide more than a key."""

_SECRETS: Set[str] = set()
_LOCK = threading.Lock()


def register_secret(value: Optional[str]) -> None:
    """Have `value` masked in every ProviderError (and anything passed through `redact`)."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _LOCK:
            _SECRETS.add(value)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every registered secret, and every one of `secrets`, replaced by ***."""
    with _LOCK:
        known = tuple(_SECRETS)
    # the longest first, so that a key containing another is masked whole
    for secret in sorted({s for s in (*secrets, *known) if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
