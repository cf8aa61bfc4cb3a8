"""The process-wide secret registry: every credential this process sends or connects with is
masked wherever an error or a log line could show it.

The API clients register their credential headers here, and the warehouse setup its Postgres
password; `redact` is what every one-line error passes through before it is printed or stored.

Masking replaces whole tokens in known positions, never substrings, so that a short secret
cannot corrupt the text around it (a password `x` leaves "exist" alone, a password `5432`
leaves the port alone):

- the password of any URL (`scheme://user:***@host`), registered or not;
- the value after a credential header's or a password's name (`Authorization: Bearer ***`,
  `'x-api-key': '***'`, `password=***`);
- a registered key wherever it stands as a whole token (a vendor quoting it back: "Invalid
  token ***."). Passwords are masked in the first two positions only, since a password may be
  an ordinary word or number.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Iterable, Optional, Set, Tuple
from urllib.parse import urlsplit

REDACTED = "***"

_KEYS: Set[str] = set()
_PASSWORDS: Set[str] = set()
_NAMES: Set[str] = {"authorization", "proxy-authorization", "password"}
"""Names whose value is masked where it follows them (`name: value`, `'name': 'value'`, `name=value`)."""
_LOCK = threading.Lock()

_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:]*:)[^\s/?#]*@")
"""The password of a URL: up to the last `@` of its authority."""
_TOKEN_CHAR = "A-Za-z0-9_-"
_AUTH_SCHEME = r"(?:(?:bearer|token|basic|digest)\s+)?"


def register_secret(value: Optional[str]) -> None:
    """Have the key `value` masked as a whole token in every ProviderError (and anything passed
    through `redact`)."""
    if value:
        with _LOCK:
            _KEYS.add(value)


def register_header(name: str, value: Optional[str]) -> None:
    """A credential header: its value, and the key alone after a scheme such as `Bearer `, are
    masked as whole tokens, and whatever follows the header's name is masked too."""
    with _LOCK:
        _NAMES.add(name.lower())
    text = str(value or "")
    for part in (text, *text.split()[-1:]):
        register_secret(part)


def register_password(value: Optional[str]) -> None:
    """Have the password `value` masked where a password stands (a URL's, `password=`), and
    nowhere else."""
    if value:
        with _LOCK:
            _PASSWORDS.add(value)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every credential masked (see the module's rules); `secrets` are more keys,
    except those registered as passwords, which keep a password's rules."""
    with _LOCK:
        keys, passwords, names = frozenset(_KEYS), frozenset(_PASSWORDS), frozenset(_NAMES)
    keys = keys.union(s for s in secrets if s and s not in passwords)
    for password in passwords:  # exactly, whatever characters it holds
        text = text.replace(f":{password}@", f":{REDACTED}@")
    text = _URL_PASSWORD.sub(lambda match: f"{match['head']}{REDACTED}@", text)
    text = _after_names(tuple(sorted(names))).sub(lambda match: f"{match['head']}{REDACTED}", text)
    if keys:
        text = _whole_tokens(tuple(sorted(keys, key=len, reverse=True))).sub(REDACTED, text)
    return text


def without_password(url: str) -> str:
    """`url` as it may be printed: its password, if any, replaced by ***."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        url = url.replace(f":{password}@", f":{REDACTED}@", 1)
    return _URL_PASSWORD.sub(lambda match: f"{match['head']}{REDACTED}@", url)


@functools.lru_cache(maxsize=8)
def _after_names(names: Tuple[str, ...]) -> "re.Pattern[str]":
    """`name: value`, `"name": "value"`, `name=value` (any case), the value being the group's end."""
    alternatives = "|".join(re.escape(name) for name in names)
    return re.compile(
        rf"(?P<head>(?<![{_TOKEN_CHAR}])(?:{alternatives})[\"']?\s*[:=]\s*[\"']?{_AUTH_SCHEME})[^\s\"',;&)}}\]]+",
        re.IGNORECASE,
    )


@functools.lru_cache(maxsize=8)
def _whole_tokens(keys: Tuple[str, ...]) -> "re.Pattern[str]":
    """Any of `keys` (the longest first) not inside a longer run of letters, digits, `_` or `-`."""
    alternatives = "|".join(re.escape(key) for key in keys)
    return re.compile(rf"(?<![{_TOKEN_CHAR}])(?:{alternatives})(?![{_TOKEN_CHAR}])")
