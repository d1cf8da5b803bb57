"""libpq connection URLs read without importing psycopg when they are plain (its import costs ~85 ms
of a command's start-up): `backup create` starts pg_dump before psycopg is imported."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")  # libpq refuses it: its error is for libpq to give
_LIBPQ_SCHEMES = ("postgresql", "postgres")
_UNPLAIN = re.compile(r"[\x00-\x20\x7f]")  # whitespace and control characters: libpq's to read
_DELIMITER = re.compile(r"[/?]")
_PLAIN_QUERY_KEYS = ("sslmode", "connect_timeout", "application_name", "sslrootcert", "target_session_attrs")


def split_url(url: str) -> dict[str, str]:
    """The parameters libpq reads from a connection URL or string (psycopg's conninfo_to_dict). A plain
    URL (`postgresql://user:pw@host:port/db?key=value`, one host) is read here, without importing
    psycopg; anything else (several hosts, `key=value` strings, JDBC's `ssl=true`) goes to libpq."""
    plain = plain_url(url)
    if plain is not None:
        return plain
    from psycopg.conninfo import conninfo_to_dict

    return {k: str(v) for k, v in conninfo_to_dict(url).items()}


def plain_url(url: str) -> dict[str, str] | None:
    """A plain URL's parameters as libpq reads them; None for anything else (libpq's to read)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in _LIBPQ_SCHEMES or "#" in rest or _BAD_PERCENT.search(rest) or "%00" in rest:
        return None
    # urlsplit drops tabs and newlines and trims the ends, where libpq keeps them; user and password
    # end at the first `@` for libpq and at the last for urlsplit, which also stops them at `/` or `?`.
    if _UNPLAIN.search(rest) or rest.count("@") > 1 or ("@" in rest and _DELIMITER.search(rest.partition("@")[0])):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    netloc = parts.netloc
    hostport = netloc.rpartition("@")[2]
    if "," in hostport or (hostport.endswith(":") and port is None):
        return None
    if port is not None and hostport.rpartition(":")[2] != str(port):
        return None  # `05432` or `+5432`: libpq passes the text on as it is
    params: dict[str, str] = {}
    if "@" in netloc:
        user, has_password, password = netloc.rpartition("@")[0].partition(":")
        if user:
            params["user"] = unquote(user)
        if has_password and password:  # libpq reads an empty one as none
            params["password"] = unquote(password)
    host = hostport.rsplit(":", 1)[0] if port is not None else hostport
    if host.startswith("["):
        host = host[1:-1]
    if host:
        params["host"] = unquote(host)
    if port is not None:
        params["port"] = str(port)
    if parts.path.startswith("/") and len(parts.path) > 1:
        params["dbname"] = unquote(parts.path[1:])
    for pair in parts.query.split("&") if parts.query else ():
        key, has_value, value = pair.partition("=")
        key = unquote(key)
        if not has_value or key not in _PLAIN_QUERY_KEYS or key in params:
            return None  # libpq's own reading (and its errors) for anything else
        params[key] = unquote(value)
    return params
