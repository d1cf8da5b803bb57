"""Redaction of secrets from every message, log line and output.

Secrets reach civicq-ops only through URLs, `${ENV}` interpolation and libpq variables. Each value
interpolated from the environment into a URL's password, and every password seen in a URL, is
registered here; `redact()` replaces any registered secret and any URL password it sees.
"""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import unquote

MASK = "********"

_lock = threading.Lock()
_secrets: set[str] = set()

# scheme://user:password@host  -> the password part; also key=value conninfo passwords.
_URL_PASSWORD = re.compile(r"(?P<pre>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)(?P<post>@)")
_CONNINFO_PASSWORD = re.compile(r"(?P<pre>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"(?P<pre>[?&]password=)(?P<pw>[^&\s]+)", re.IGNORECASE)


def register_secret(value: str | None) -> None:
    """Remember a secret so that every later `redact()` masks it."""
    if value and len(value) >= 3:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Mask URL passwords, conninfo passwords and every registered secret in `text`."""
    if not text:
        return text
    text = _URL_PASSWORD.sub(lambda m: m["pre"] + (MASK if m["pw"] else "") + m["post"], text)
    text = _CONNINFO_PASSWORD.sub(lambda m: m["pre"] + MASK, text)
    text = _QUERY_PASSWORD.sub(lambda m: m["pre"] + MASK, text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


# Connection parameters that hold secrets.
SECRET_KEYS = ("password", "sslpassword")


def register_url_secrets(url: str) -> None:
    """Register the secrets of a URL or conninfo string, read with libpq's own parser (through
    psycopg.conninfo; a plain URL as libpq reads it, core/conninfo.py) so that every form libpq
    accepts is understood. A string libpq refuses is
    still a connection string a user meant: its likely password (what follows `user:` up to the
    last `@`, or `password=` up to the next `key=`) is registered whole and by fragments, since
    libpq's error messages quote fragments of it (`missing "=" after "SECRETPART"`)."""
    from civicq_ops.core.conninfo import plain_url

    params: dict[str, Any] | None = plain_url(url)  # a plain URL is read without psycopg (core/conninfo.py)
    if params is None:
        from psycopg import ProgrammingError
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = conninfo_to_dict(url)
        except ProgrammingError:
            params = None
    if params is None:
        params = {}
        for candidate in _malformed_secrets(url):
            register_secret(candidate)
            for fragment in re.split(r"[\s'\"]+", candidate):
                if len(fragment) >= 4:
                    register_secret(fragment)
    for key in SECRET_KEYS:
        if params.get(key):
            register_secret(str(params[key]))
    for pattern in (_URL_PASSWORD, _CONNINFO_PASSWORD, _QUERY_PASSWORD):
        for m in pattern.finditer(url):
            pw = m["pw"].strip("'")
            register_secret(pw)
            # A percent-encoded password is also seen decoded by libpq and in server messages.
            register_secret(unquote(pw))


_MALFORMED_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@]*:(?P<pw>.*)@", re.DOTALL)
_MALFORMED_KEY = re.compile(r"\b(?:ssl)?password\s*=\s*(?P<pw>.*?)(?=\s+\w+\s*=|$)", re.IGNORECASE | re.DOTALL)


def _malformed_secrets(text: str) -> list[str]:
    found = [m["pw"] for m in _MALFORMED_URL.finditer(text.strip())]
    found += [m["pw"].strip().strip("'") for m in _MALFORMED_KEY.finditer(text)]
    return [f for f in found if f]
