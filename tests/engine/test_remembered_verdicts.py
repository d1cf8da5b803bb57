"""Each check's final SQL is judged once per text (issue 14): texts judged safe are remembered, in
memory and between processes in a file signed with this user's key; a refused text is judged, and
refused, every run; no other file is ever trusted (a forged list of safe texts must not let a
refused query run)."""

from __future__ import annotations

import hashlib
import json

import pytest

from civicq_ops.catalog import verdicts
from civicq_ops.catalog.model import Catalog, Check, Source
from civicq_ops.core import signed_cache
from tests.fixtures.pg import run_on

UNSAFE = "SELECT length(query_to_xml('SELECT 1', true, false, '')::text) AS v"


def adhoc(query: str) -> Catalog:
    data = {"id": "adhoc", "title": "Ad hoc", "category": "test", "query": query, "value": "v",
            "thresholds": {"warning": {"gt": 0}}}
    return Catalog(checks={"adhoc": Check.from_dict(data, Source("adhoc.yaml", 1))})


def test_a_safe_final_text_is_parsed_once_per_process(db, monkeypatch):
    import civicq_ops.engine.run as run_module

    judged: list[str] = []
    real = run_module.inspect_query

    def counting(text, **kw):
        judged.append(text)
        return real(text, **kw)

    monkeypatch.setattr(run_module, "inspect_query", counting)
    text = f"SELECT 2 AS v /* parsed once in {db.name} */"  # new to this process (the memory is per process)
    first = run_on(db, catalog=adhoc(text))
    second = run_on(db, catalog=adhoc(text))
    assert [(f.status, f.value) for f in first.findings] == [(f.status, f.value) for f in second.findings] \
        == [("warning", 2)]
    assert len([t for t in judged if "parsed once" in t]) == 1


def test_a_refused_text_is_refused_every_run(db):
    for _ in range(2):
        [finding] = run_on(db, catalog=adhoc(UNSAFE)).findings
        assert finding.status == "error" and "refused before running" in finding.reason


def test_a_forged_file_of_safe_texts_is_not_trusted(db):
    """What a review of the first version found: a file under .civicq-ops/ listed a text the judge
    refuses, and the run sent it without a parse."""
    project, _ = db.project()
    for name in ("run-verdicts.json",):
        path = project.state_dir / "catalog-cache" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"stamp": "anything", "safe": [hashlib.sha256(UNSAFE.encode()).hexdigest()]}))
    [finding] = run_on(db, catalog=adhoc(UNSAFE)).findings
    assert finding.status == "error" and "refused before running" in finding.reason
    assert not any(p.name != "run-verdicts.json" and "verdict" in p.name
                   for p in (project.state_dir / "catalog-cache").iterdir())


@pytest.fixture
def own_key(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    signed_cache.secret.cache_clear()
    yield tmp_path / "xdg" / "civicq-ops"
    signed_cache.secret.cache_clear()
    signed_cache._PENDING.clear()


def test_a_text_judged_safe_by_an_earlier_process_is_not_parsed_again(own_key, db, monkeypatch):
    import civicq_ops.engine.run as run_module

    path = own_key / "verdicts" / "judge.bin"
    text = f"SELECT 3 AS v /* judged by an earlier process in {db.name} */"
    monkeypatch.setattr(verdicts, "_PROCESS", verdicts.VerdictCache(path))
    run_on(db, catalog=adhoc(text))
    signed_cache.flush_pending()  # as the CLI does when a command ends
    monkeypatch.setattr(verdicts, "_PROCESS", verdicts.VerdictCache(path))  # the next process
    monkeypatch.setattr(run_module, "inspect_query", lambda *a, **k: pytest.fail("parsed again"))
    [finding] = run_on(db, catalog=adhoc(text)).findings
    assert (finding.status, finding.value) == ("warning", 3)


def test_a_verdict_file_not_signed_with_this_users_key_is_not_trusted(own_key, db, monkeypatch):
    """The file lists the refused text's digest, signed with another key (another user's, or one
    committed next to a project)."""
    path = own_key / "verdicts" / "judge.bin"
    path.parent.mkdir(parents=True)
    final = run_module_final_text(UNSAFE)
    payload = hashlib.sha256(final.encode()).digest()
    path.write_bytes(signed_cache.sign(b"k" * 64, payload) + b"\n" + payload)
    monkeypatch.setattr(verdicts, "_PROCESS", verdicts.VerdictCache(path))
    [finding] = run_on(db, catalog=adhoc(UNSAFE)).findings
    assert finding.status == "error" and "refused before running" in finding.reason


def test_the_same_file_signed_with_this_users_key_is_trusted(own_key, db, monkeypatch):
    """The other side of the boundary (so the test above can fail): what this user's civicq-ops
    signed is believed without a parse."""
    path = own_key / "verdicts" / "judge.bin"
    payload = hashlib.sha256(run_module_final_text(UNSAFE).encode()).digest()
    assert signed_cache.write_signed(path, payload, "verdicts")
    monkeypatch.setattr(verdicts, "_PROCESS", verdicts.VerdictCache(path))
    [finding] = run_on(db, catalog=adhoc(UNSAFE)).findings
    assert "refused before running" not in (finding.reason or "")


def test_a_file_signed_by_this_user_for_another_use_is_not_trusted(own_key, db, monkeypatch):
    """A catalogue entry's content comes from a project's files: signed for that use, its bytes
    are never verdicts (or compiled code) when copied where those are read."""
    path = own_key / "verdicts" / "judge.bin"
    payload = hashlib.sha256(run_module_final_text(UNSAFE).encode()).digest()
    assert signed_cache.write_signed(path, payload, "catalog")
    monkeypatch.setattr(verdicts, "_PROCESS", verdicts.VerdictCache(path))
    [finding] = run_on(db, catalog=adhoc(UNSAFE)).findings
    assert finding.status == "error" and "refused before running" in finding.reason


def run_module_final_text(query: str) -> str:
    from civicq_ops.templating.render import render_query

    return render_query(query, {}).numbered()
