"""Compiled templates kept between processes (issue 14): a template Jinja compiled once is loaded as
code by the next process, only from a file signed with this user's key, and renders exactly as a
fresh compile does."""

from __future__ import annotations

import json
import marshal
from pathlib import Path

import pytest

from civicq_ops.catalog.load import load_catalog
from civicq_ops.core import signed_cache
from civicq_ops.templating import compiled, render
from tests.fixtures.pg import REPO

TEMPLATE = "{{ row.relname | qident }} holds {{ row.n | number }} rows{% if row.n > 10 %} (many){% endif %}"
CONTEXT = {"row": {"relname": "votes", "n": 12345}}


@pytest.fixture
def own_key(tmp_path, monkeypatch):
    """A key and cache folder of this test's own; every process-wide memory starts empty."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CIVICQ_NO_CATALOG_CACHE", raising=False)

    def forget():
        signed_cache.secret.cache_clear()
        compiled.compiled_store.cache_clear()
        render.compile_template.cache_clear()
        signed_cache._PENDING.clear()

    forget()
    yield tmp_path / "xdg" / "civicq-ops"
    forget()


def _new_process():
    """What a new process starts with: no compiled template in memory (the store is read again)."""
    compiled.compiled_store.cache_clear()
    render.compile_template.cache_clear()


def _refuse_compiling(monkeypatch):
    env = render.environment()
    monkeypatch.setattr(env, "compile", lambda *a, **k: pytest.fail("Jinja compiled a stored template"))


def test_a_template_compiled_once_is_loaded_as_code_by_the_next_process(own_key, monkeypatch):
    first = render.render_text(TEMPLATE, CONTEXT)
    signed_cache.flush_pending()  # as the CLI does when a command ends
    assert list((own_key / "templates").glob("*.bin"))
    _new_process()
    _refuse_compiling(monkeypatch)
    assert render.render_text(TEMPLATE, CONTEXT) == first == '"votes" holds 12,345 rows (many)'


def test_a_store_edited_outside_civicq_ops_is_not_loaded(own_key, monkeypatch):
    render.render_text(TEMPLATE, CONTEXT)
    signed_cache.flush_pending()
    [path] = (own_key / "templates").glob("*.bin")
    mac, _, payload = path.read_bytes().partition(b"\n")
    stored = marshal.loads(payload)
    evil = compile("__import__('os').system('echo pwned')", "<evil>", "exec")
    path.write_bytes(mac + b"\n" + marshal.dumps({key: marshal.dumps(evil) for key in stored}))
    _new_process()
    assert compiled.compiled_store().code(TEMPLATE) is None
    assert render.render_text(TEMPLATE, CONTEXT) == '"votes" holds 12,345 rows (many)'


def test_a_store_signed_with_another_users_key_is_not_loaded(own_key, monkeypatch, tmp_path):
    render.render_text(TEMPLATE, CONTEXT)
    signed_cache.flush_pending()
    (own_key / "catalog-cache.key").write_text("another user's key, long enough to be a key: 0123456789")
    signed_cache.secret.cache_clear()
    _new_process()
    assert compiled.compiled_store().code(TEMPLATE) is None


def test_without_a_key_nothing_is_stored_and_templates_still_render(monkeypatch):
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: (_ for _ in ()).throw(RuntimeError("no home"))))
    signed_cache.secret.cache_clear()
    _new_process()
    try:
        assert compiled.compiled_store() is None
        assert render.render_text(TEMPLATE, CONTEXT) == '"votes" holds 12,345 rows (many)'
    finally:
        signed_cache.secret.cache_clear()
        _new_process()


def test_every_shipped_template_loads_as_the_code_jinja_compiles(own_key):
    catalog = load_catalog([REPO / "checks"], include_tests=False).catalog
    texts = {t for c in catalog.checks.values()
             for t in [c.query, *(v.query for v in c.variants), c.message, c.recommendation]
             if t and not render._plain(t)}
    assert len(texts) > 100
    for text in texts:
        render.compile_template(text)
    signed_cache.flush_pending()
    _new_process()
    store, env = compiled.compiled_store(), render.environment()
    for text in texts:
        assert store.code(text) == env.compile(text), text[:60]


def test_a_run_keeps_its_compiled_templates_for_the_next_one(cli, db, tmp_path):
    """End to end through the command line: the first run writes the store as it ends, the second
    loads it and reports the same."""
    xdg = tmp_path / "xdg"
    env = {"CIVICQ_DATABASE_URL": db.url, "XDG_CACHE_HOME": str(xdg)}
    args = ("--config", str(REPO / "civicq-ops.yaml"), "run", "checks", "--format", "json",
            "--check", "table-dead-tuples,invalid-index,sequence-exhaustion")
    first = cli(*args, env=env)
    assert first.exit_code == 0, first.output
    [store] = (xdg / "civicq-ops" / "templates").glob("*.bin")
    written = store.stat().st_mtime_ns
    second = cli(*args, env=env)
    strip = lambda out: [{k: v for k, v in f.items() if k not in ("observed_at",)} for f in json.loads(out)["findings"]]  # noqa: E731
    assert strip(second.stdout) == strip(first.stdout)
    assert store.stat().st_mtime_ns == written  # nothing new to keep: not written again


def test_stores_of_other_versions_unused_for_a_month_are_removed(own_key):
    import os
    import time

    render.render_text(TEMPLATE, CONTEXT)
    folder = own_key / "templates"
    folder.mkdir(parents=True, exist_ok=True)
    old, recent, torn = folder / "0ld-version.bin", folder / "other-version.bin", folder / ".x.bin.partial"
    for path in (old, recent, torn):
        path.write_bytes(b"x")
    month_ago = time.time() - signed_cache.STALE_S - 60
    os.utime(old, (month_ago, month_ago))
    os.utime(torn, (time.time() - 7200, time.time() - 7200))
    signed_cache.flush_pending()
    assert sorted(p.name for p in folder.iterdir()) == sorted([compiled.compiled_store().path.name, recent.name])


def test_a_key_others_may_read_signs_nothing(own_key):
    render.render_text(TEMPLATE, CONTEXT)
    signed_cache.flush_pending()
    (own_key / "catalog-cache.key").chmod(0o644)
    signed_cache.secret.cache_clear()
    _new_process()
    assert compiled.compiled_store() is None
