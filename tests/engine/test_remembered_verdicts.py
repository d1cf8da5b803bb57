"""A run parses each check's final SQL once per text: texts judged safe are remembered in
`.civicq-ops/catalog-cache/run-verdicts.json` (issue 14); a refused text is judged again every run."""

from __future__ import annotations

import hashlib
import json

from civicq_ops.catalog.model import Catalog, Check, Source
from civicq_ops.catalog.verdicts import FILE
from tests.fixtures.pg import run_on


def adhoc(query: str) -> Catalog:
    data = {"id": "adhoc", "title": "Ad hoc", "category": "test", "query": query, "value": "v",
            "thresholds": {"warning": {"gt": 0}}}
    return Catalog(checks={"adhoc": Check.from_dict(data, Source("adhoc.yaml", 1))})


def _remembered(db) -> list[str]:
    project, _ = db.project()
    path = project.state_dir / "catalog-cache" / FILE
    return json.loads(path.read_text())["safe"] if path.exists() else []


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_a_safe_final_text_is_remembered_and_gives_the_same_finding_next_run(db):
    catalog = adhoc("SELECT 1 AS v")
    first = run_on(db, catalog=catalog)
    assert _sha("SELECT 1 AS v") in _remembered(db)
    second = run_on(db, catalog=catalog)
    assert [(f.status, f.value) for f in first.findings] == [(f.status, f.value) for f in second.findings] \
        == [("warning", 1)]


def test_a_refused_text_is_not_remembered_and_is_refused_every_run(db):
    unsafe = "SELECT length(query_to_xml('SELECT 1', true, false, '')::text) AS v"
    for _ in range(2):
        [finding] = run_on(db, catalog=adhoc(unsafe)).findings
        assert finding.status == "error" and "refused before running" in finding.reason
    assert _sha(unsafe) not in _remembered(db)


def test_remembered_texts_from_another_civicq_ops_are_forgotten(db):
    project, _ = db.project()
    path = project.state_dir / "catalog-cache" / FILE
    unsafe = "SELECT length(query_to_xml('SELECT 1', true, false, '')::text) AS v"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"stamp": "another-version", "safe": [_sha(unsafe)]}))
    [finding] = run_on(db, catalog=adhoc(unsafe)).findings
    assert finding.status == "error" and "refused before running" in finding.reason


def test_a_remembered_text_is_not_parsed_again(db):
    # The file is trusted like the catalogue it sits beside: a text it lists runs without a parse
    # (here one the parser would refuse; the READ ONLY transaction still guards it).
    from civicq_ops.catalog.verdicts import VerdictCache

    project, _ = db.project()
    text = "SELECT pg_try_advisory_xact_lock(1)::int AS v"
    cache = VerdictCache(project.state_dir / "catalog-cache")
    cache.add_safe(text)
    cache.save()
    try:
        [finding] = run_on(db, catalog=adhoc(text)).findings
    finally:
        cache.path.unlink()
    assert finding.status == "warning", finding.reason
