"""Baselines: accept today's findings, fail only on what is new or worse.

A baseline entry is keyed by the server's identity (its system identifier) and the database, with
the check and subject: the same database reached under another target name (`env` in CI, `prod`
on a laptop) matches its baseline. Entries keep the status and the value, so a report can say
what is new, what got worse, and what has cleared since. Baselines written before format 2
(keyed by target name, statuses only) are still read, matched by finding id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from civicq_ops.core.errors import InputError
from civicq_ops.core.fileio import write_atomic
from civicq_ops.core.thresholds import SEVERITY
from civicq_ops.engine.findings import Finding, jsonable

BASELINE_VERSION = "2.0"
PROBLEMS = ("warning", "critical")
# What a finding is, compared with the baseline (SARIF's baselineState in parentheses):
# new (new), worse: a more severe status (updated), better (updated), unchanged (unchanged).
FAILING_STATES = ("new", "worse")


class TargetIdentity(Protocol):
    name: str
    system_identifier: str | None
    database: str | None


def identity_key(server: str | None, database: str | None, target: str, check: str, subject: dict | None) -> str:
    """The server and database when known (else the target name), the check and the subject."""
    where = ["server", server, database] if server else ["target", target, database]
    key = json.dumps([*where, check, subject or {}], sort_keys=True, default=str, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass
class Entry:
    check: str
    target: str
    subject: dict | None
    status: str
    value: Any = None
    unit: str | None = None
    server: str | None = None
    database: str | None = None

    def to_dict(self) -> dict:
        return {"check": self.check, "target": self.target, "subject": self.subject, "status": self.status,
                "value": self.value, "unit": self.unit, "server": self.server, "database": self.database}


@dataclass
class Baseline:
    path: str
    entries: dict[str, Entry]  # identity key (or, in a format 1 file, finding id) -> entry
    legacy: bool = False


@dataclass
class Comparison:
    """Each current problem's state against the baseline, and the accepted ones no longer found."""

    states: dict[str, str] = field(default_factory=dict)      # finding id -> new | worse | better | unchanged
    previous: dict[str, Entry] = field(default_factory=dict)  # finding id -> its baseline entry
    absent: list[Entry] = field(default_factory=list)

    def fails(self, finding: Finding) -> bool:
        return self.states.get(finding.id, "new") in FAILING_STATES


def _identities(targets: Sequence[TargetIdentity] | None) -> dict[str, tuple[str | None, str | None]]:
    return {t.name: (t.system_identifier, t.database) for t in targets or []}


def _key(f: Finding, ids: dict[str, tuple[str | None, str | None]]) -> str:
    server, database = ids.get(f.target, (None, None))
    return identity_key(server, database, f.target, f.check, f.subject)


def baseline_document(findings: list[Finding], targets: Sequence[TargetIdentity] | None = None) -> dict:
    ids = _identities(targets)
    entries = {}
    for f in sorted(findings, key=lambda f: f.id):
        if f.status not in PROBLEMS:
            continue
        server, database = ids.get(f.target, (None, None))
        entries[_key(f, ids)] = Entry(f.check, f.target, jsonable(f.subject), f.status, jsonable(f.value), f.unit,
                                      server, database).to_dict()
    return {"format_version": BASELINE_VERSION, "findings": entries}


def write_baseline(findings: list[Finding], path: str | Path, targets: Sequence[TargetIdentity] | None = None) -> int:
    """Write the warning and critical findings as accepted; `targets` gives their server identities."""
    doc = baseline_document(findings, targets)
    write_atomic(path, json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    return len(doc["findings"])


def load_baseline(path: str | Path) -> Baseline:
    try:
        doc = json.loads(Path(path).read_text())
        version = str(doc.get("format_version", ""))
        raw = doc["findings"]
        if version.startswith("1."):  # keyed by finding id (target name), statuses only
            entries = {fid: Entry(e["check"], e["target"], e.get("subject"), e["status"]) for fid, e in raw.items()}
            return Baseline(str(path), entries, legacy=True)
        if not version.startswith("2."):
            raise InputError(f"{path}: baseline format_version {version!r} is not supported "
                             f"(write it again with `civicq-ops baseline write {path}`)")
        entries = {key: Entry(e["check"], e["target"], e.get("subject"), e["status"], e.get("value"), e.get("unit"),
                              e.get("server"), e.get("database")) for key, e in raw.items()}
        return Baseline(str(path), entries)
    except FileNotFoundError:
        raise InputError(f"{path}: no such baseline file (write one with `civicq-ops baseline write {path}`)") from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise InputError(f"{path}: not a civicq-ops baseline ({e.__class__.__name__}: {e})") from e


def compare(baseline: Baseline, findings: list[Finding], targets: Sequence[TargetIdentity],
            checks_run: set[str]) -> Comparison:
    """Mark every warning and critical finding new, worse, better or unchanged; list what cleared.

    An accepted entry counts as absent only when its server and database (or, for an old file,
    its target) were reached in this run and its check ran: a narrower run clears nothing.
    """
    ids = _identities(targets)
    reached = [t for t in targets if not getattr(t, "error", None)]
    out = Comparison()
    seen: set[str] = set()
    for f in findings:
        if f.status not in PROBLEMS:
            continue
        key = f.id if baseline.legacy else _key(f, ids)
        entry = baseline.entries.get(key)
        if entry is None:
            out.states[f.id] = "new"
            continue
        seen.add(key)
        out.previous[f.id] = entry
        diff = SEVERITY[f.status] - SEVERITY.get(entry.status, 0)
        out.states[f.id] = "worse" if diff > 0 else "better" if diff < 0 else "unchanged"
    places = ({("target", t.name) for t in reached} if baseline.legacy else
              {("server", t.system_identifier, t.database) if t.system_identifier else ("target", t.name, t.database)
               for t in reached})
    for key, entry in baseline.entries.items():
        place = ("target", entry.target) if baseline.legacy else (
            ("server", entry.server, entry.database) if entry.server else ("target", entry.target, entry.database))
        if key not in seen and entry.check in checks_run and place in places:
            out.absent.append(entry)
    return out
