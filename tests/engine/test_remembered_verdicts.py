"""A process judges each check's final SQL once per text (issue 14): texts judged safe are
remembered in memory; a refused text is judged, and refused, every run; nothing on disk is ever
trusted (a forged list of safe texts must not let a refused query run)."""

from __future__ import annotations

import hashlib
import json

from civicq_ops.catalog.model import Catalog, Check, Source
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
