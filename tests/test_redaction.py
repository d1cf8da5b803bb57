"""Secrets never appear in any output: URLs, conninfo strings, interpolated variables."""

from __future__ import annotations

from civicq_ops.core.redaction import MASK, redact, register_secret

PASSWORD = "s3cr3t-Pa55word"


def test_url_password_is_masked():
    assert redact(f"postgresql://app:{PASSWORD}@db:5432/civicq") == f"postgresql://app:{MASK}@db:5432/civicq"


def test_conninfo_password_is_masked():
    assert PASSWORD not in redact(f"host=db password={PASSWORD} dbname=x")
    assert PASSWORD not in redact(f"host=db password='{PASSWORD}' dbname=x")


def test_query_string_password_is_masked():
    assert PASSWORD not in redact(f"postgresql://db/civicq?user=a&password={PASSWORD}")


def test_registered_secret_is_masked_anywhere():
    register_secret("another-secret-value")
    assert redact("it said another-secret-value twice: another-secret-value") == f"it said {MASK} twice: {MASK}"


def test_text_without_secrets_is_unchanged():
    assert redact("postgresql://app@db/civicq and port=5432") == "postgresql://app@db/civicq and port=5432"


def test_secrets_are_read_with_libpq_s_parser():
    from civicq_ops.core.redaction import register_url_secrets

    register_url_secrets("host=db user=a password='quoted pass phrase' sslpassword=key-secret-77 dbname=x")
    text = 'libpq said "quoted pass phrase" and key-secret-77'
    assert "quoted pass phrase" not in redact(text) and "key-secret-77" not in redact(text)


def test_malformed_strings_are_masked_whole_and_by_fragments():
    from civicq_ops.core.redaction import register_url_secrets

    register_url_secrets("postgresql://app:OPENSESAME door@db/x")  # a space: libpq refuses it
    assert redact('unexpected spaces found in "OPENSESAME door"') == f'unexpected spaces found in "{MASK}"'
    register_url_secrets("host=db password=HALFSECRET otherhalf dbname=x")
    assert redact('missing "=" after "otherhalf" in connection info string') == \
        f'missing "=" after "{MASK}" in connection info string'
    assert "HALFSECRET" not in redact("HALFSECRET")
