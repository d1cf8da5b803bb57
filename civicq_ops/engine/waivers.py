"""Waivers: a reviewed, owned, expiring exception for one finding (or a family of them)."""

from __future__ import annotations

from datetime import date

from civicq_ops.catalog.model import Waiver
from civicq_ops.engine.findings import Finding


def matches(waiver: Waiver, finding: Finding) -> bool:
    if waiver.check != finding.check:
        return False
    if waiver.target and waiver.target != finding.target:
        return False
    subject = finding.subject or {}
    return all(str(subject.get(k)) == str(v) for k, v in waiver.subject.items())


def apply_waivers(findings: list[Finding], waivers: list[Waiver], today: date, checks_run: set[str]) -> list[dict]:
    """Mark waived findings; return notices for expired and stale waivers."""
    notices: list[dict] = []
    used: set[int] = set()
    for finding in findings:
        if finding.status not in ("warning", "critical"):
            continue
        for i, waiver in enumerate(waivers):
            if not matches(waiver, finding):
                continue
            used.add(i)
            if date.fromisoformat(waiver.expires) < today:
                notices.append(_notice("waiver-expired", waiver,
                                       f"waiver for {finding.check} on {finding.subject_text()} expired on "
                                       f"{waiver.expires} (owner {waiver.owner}): the finding counts again"))
                continue
            finding.waiver = {"reason": waiver.reason, "owner": waiver.owner, "expires": waiver.expires,
                              "source": f"{waiver.source.path}:{waiver.source.line}"}
            break
    for i, waiver in enumerate(waivers):
        if i not in used and waiver.check in checks_run:
            notices.append(_notice("waiver-stale", waiver,
                                   f"waiver for {waiver.check} {waiver.subject or ''} matches no finding: "
                                   f"remove it (owner {waiver.owner})"))
    return notices


def _notice(code: str, waiver: Waiver, message: str) -> dict:
    return {"code": code, "message": message, "path": waiver.source.path, "line": waiver.source.line}
