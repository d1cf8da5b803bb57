"""core/conninfo.py reads plain URLs without psycopg: for any URL, it either gives exactly what
libpq reads (psycopg's conninfo_to_dict) or leaves the URL to libpq. Redaction and every
connection depend on that."""

from __future__ import annotations

from urllib.parse import quote

import psycopg
from hypothesis import example, given, settings
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict

from civicq_ops.core.conninfo import plain_url

# Characters users put in passwords and names, the URL delimiters among them.
_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from(
    list(":@/?#&=%[],+ ;'\"\\\t\r\n")), max_size=12)
_KEYS = st.sampled_from(["sslmode", "connect_timeout", "application_name", "sslrootcert", "target_session_attrs",
                         "host", "port", "user", "options", "ssl", "dbname", ""])


@st.composite
def urls(draw) -> str:
    scheme = draw(st.sampled_from(["postgresql", "postgres"]))
    encode = draw(st.booleans())  # users also paste unencoded URLs
    part = (lambda s: quote(s, safe="")) if encode else (lambda s: s)
    user, password = draw(_TEXT), draw(_TEXT)
    userinfo = ""
    if draw(st.booleans()):
        userinfo = part(user) + (":" + part(password) if draw(st.booleans()) else "") + "@"
    host = draw(st.sampled_from(["127.0.0.1", "db.example", "[::1]", "", "%2Ftmp", "h1,h2"]))
    port = draw(st.sampled_from(["", ":5432", ":1", ":", ":99999", ":x", ":05432", ":+1"]))
    path = "/" + part(draw(_TEXT)) if draw(st.booleans()) else ""
    pairs = draw(st.lists(st.tuples(_KEYS, _TEXT), max_size=3))
    query = "?" + "&".join(f"{k}={part(v)}" for k, v in pairs) if pairs else ""
    url = f"{scheme}://{userinfo}{host}{port}{path}{query}"
    return url + draw(st.sampled_from(["", "\n", " ", "\t"]))  # pasted with its line end


@settings(max_examples=1500, deadline=None)
@given(urls())
@example("postgresql://u:pa\tss@h/db")  # what a review found urlsplit reading otherwise
@example("postgresql://u:12?sslmode=require@h/db")
@example("postgresql://u:p@h/db\n")
@example("postgresql://u:p@h:05432/db")
@example("postgresql://u:p@q@h/d")  # libpq ends the password at the first `@`
def test_a_url_read_here_reads_as_libpq_reads_it(url):
    mine = plain_url(url)
    if mine is None:
        return  # left to libpq
    try:
        theirs = {k: str(v) for k, v in conninfo_to_dict(url).items()}
    except psycopg.ProgrammingError:
        raise AssertionError(f"read here, refused by libpq: {url!r} -> {mine}") from None
    assert mine == theirs, url


def test_a_password_with_a_tab_is_masked_whole():
    from civicq_ops.core.redaction import redact, register_url_secrets

    url = "postgresql://u:pa\tSECRETss@h/db"
    register_url_secrets(url)
    assert "SECRET" not in redact(f"cannot connect with {url}")
