"""Judge counters over recent activity: the increase since the previous run, not since the stats reset.

A check declares `delta: {counters: [...], min_total: PARAM, ratio_of: COLUMN}`. For each row the
engine replaces each counter by its increase since the counters stored for the same target and
subject, and, when `ratio_of` is set, writes the check's value as that counter's increase over the
sum of all increases (e.g. hits / (hits + reads)). A subject is judged only once its counters grew
by at least `params[min_total]` in sum; until then the stored counters stay, so the window grows
until it holds enough activity. A subject seen for the first time, or whose counters went down (a
stats reset), starts a new window. Rows not judged are left out and counted in the check's note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from civicq_ops.catalog.model import Check
from civicq_ops.core.capabilities import Capabilities
from civicq_ops.core.units import format_number
from civicq_ops.engine.evaluate import evaluate_rows
from civicq_ops.engine.findings import Finding
from civicq_ops.state.counters import Previous, subject_key


class Counters(Protocol):
    def load(self, target: str, check_id: str) -> dict[str, Previous]: ...

    def save(self, target: str, check_id: str, entries: dict[str, Previous]) -> None: ...


@dataclass
class DeltaOutcome:
    rows: list[dict[str, Any]]
    first_seen: int = 0
    too_quiet: int = 0
    save: dict[str, Previous] = field(default_factory=dict)

    def note(self, check: Check, minimum: Any) -> str:
        """Why nothing was judged: the message of the check's single ok finding."""
        parts = []
        if self.too_quiet:
            parts.append(f"not enough recent activity: {format_number(self.too_quiet)} subject(s) had fewer than "
                         f"{format_number(minimum)} accesses since the previous run")
        if self.first_seen:
            parts.append(f"{format_number(self.first_seen)} subject(s) seen for the first time (or after a stats "
                         "reset): their counters are kept to compare with at the next run")
        return f"{check.title}: " + ("; ".join(parts) if parts else "not enough recent activity")


def apply_delta(check: Check, rows: list[dict[str, Any]], params: dict[str, Any], previous: dict[str, Previous],
                now: datetime | None = None) -> DeltaOutcome:
    spec = check.delta
    assert spec is not None
    at = (now or datetime.now(UTC)).isoformat()
    minimum = float(params.get(spec.min_total, 0) or 0) if spec.min_total else 0.0
    out = DeltaOutcome(rows=[])
    for row in rows:
        key = subject_key({c: row.get(c) for c in check.subject})
        current = {c: float(row.get(c) or 0) for c in spec.counters}
        before = previous.get(key)
        if before is None or any(current[c] < float(before.counters.get(c, 0)) for c in spec.counters):
            out.first_seen += 1
            out.save[key] = Previous(current, at)
            continue
        increase = {c: current[c] - float(before.counters.get(c, 0)) for c in spec.counters}
        total = sum(increase.values())
        if total < minimum or total <= 0:
            out.too_quiet += 1
            continue
        judged = dict(row)
        judged.update({c: int(v) if v == int(v) else v for c, v in increase.items()})
        judged["delta_total"] = int(total) if total == int(total) else total
        judged["delta_since"] = before.at
        if spec.ratio_of and check.value:
            judged[check.value] = increase[spec.ratio_of] / total
        out.rows.append(judged)
        out.save[key] = Previous(current, at)
    return out


def target_key(caps: Capabilities) -> str:
    """Counters belong to a server and database, not to a target's name (two names may reach one)."""
    if caps.system_identifier:
        return f"{caps.system_identifier}/{caps.database}"
    return f"name:{caps.name}/{caps.database}"


def evaluate_delta(check: Check, rows: list[dict[str, Any]], params: dict[str, Any], caps: Capabilities,
                   counters: Counters | None, now: datetime | None = None) -> list[Finding]:
    """Findings over the activity since the previous run; without a state store nothing can be judged."""
    target = target_key(caps)
    previous = counters.load(target, check.id) if counters is not None else {}
    outcome = apply_delta(check, rows, params, previous, now)
    if counters is not None:
        counters.save(target, check.id, outcome.save)
    findings = evaluate_rows(check, outcome.rows, params, caps, now)
    if not outcome.rows:
        minimum = params.get(check.delta.min_total) if check.delta and check.delta.min_total else 0
        findings[0].message = outcome.note(check, minimum or 0)
        if counters is None:
            findings[0].message += " (no state store: there is no previous run to compare with)"
    return findings
