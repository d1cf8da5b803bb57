"""A plan, for people: text at a terminal, Markdown for a pull request comment, and `plan show`,
which reads a saved plan file, says whether its signature holds and whether it has expired, and
shows it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from civicq_ops.config import Project
from civicq_ops.core.errors import ExitCode, InputError, PlanRefused
from civicq_ops.remediation import signing
from civicq_ops.remediation.plan import Plan, read_plan_data
from civicq_ops.report.markdown import _esc

FORMATS = ("text", "json", "markdown")


def render(plan: Plan, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(plan.to_dict(), indent=2, default=str) + "\n"
    return render_markdown(plan) if fmt == "markdown" else render_text(plan)


def render_text(plan: Plan) -> str:
    lines = [f"plan {plan.id} for {plan.target['name']} ({plan.target['database']}, PostgreSQL "
             f"{plan.target.get('server_version', '?')}), valid until {plan.expires_at[:19]} UTC"]
    for e in plan.errors:
        lines.append(f"error: check {e['check']} failed, so the plan may miss actions: {e['message']}")
    if not plan.actions:
        lines.append("no actions" + (" (but a check failed: see above)" if plan.errors else ""))
    for a in plan.actions:
        f = a.finding
        lines.append(f"\n{a.step}. {a.action} {a.object_name}  [policy {a.policy}, mode {a.mode}]")
        lines.append(f"   why:  {f['check']} is {f.get('status')}: {f.get('message')}")
        lines.append(f"   lock: {a.lock}" + ("" if a.in_transaction else " (runs outside a transaction)"))
        if a.note:
            lines.append(f"   note: {a.note}")
        for statement in a.sql:
            lines.append(f"   sql:  {statement};")
    if plan.blocked:
        lines.append("\nnot planned:")
        for b in plan.blocked:
            lines.append(f"  - {b.action} {b.object_name} [policy {b.policy}]: {b.reason}")
    return "\n".join(lines) + "\n"


def render_markdown(plan: Plan) -> str:
    """The plan as a pull request comment: a table of actions with their SQL and locks, then what
    was not planned and why."""
    t = plan.target
    lines = [f"### civicq-ops plan `{plan.id}` for `{_esc(t['name'])}`", "",
             f"Database `{_esc(t['database'])}`, PostgreSQL {_esc(t.get('server_version', '?'))}; "
             f"valid until {plan.expires_at[:19]} UTC; {len(plan.actions)} action(s), {len(plan.blocked)} not planned.",
             ""]
    for e in plan.errors:
        lines.append(f"> **error**: check `{_esc(e['check'])}` failed, so the plan may miss actions: {_esc(e['message'])}")
    if plan.actions:
        lines += ["| # | action | object | policy (mode) | lock | why | SQL |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for a in plan.actions:
            f = a.finding
            sql = "<br>".join(f"`{_esc(s)};`" for s in a.sql)
            lock = a.lock + ("" if a.in_transaction else " (outside a transaction)")
            lines.append(f"| {a.step} | {a.action} | `{_esc(a.object_name)}` | {_esc(a.policy)} ({a.mode}) | {_esc(lock)} "
                         f"| `{_esc(f['check'])}` is {_esc(f.get('status'))} | {sql} |")
    else:
        lines.append("No actions.")
    if plan.blocked:
        lines += ["", "<details><summary>Not planned</summary>", ""]
        lines += [f"- {b.action} `{_esc(b.object_name)}` [policy {_esc(b.policy)}]: {_esc(b.reason)}" for b in plan.blocked]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


@dataclass
class Shown:
    text: str
    exit_code: ExitCode


def show_plan(path: str | Path, project: Project, fmt: str = "text", now: datetime | None = None) -> Shown:
    """`plan show FILE`: the plan, after a line on its signature and its expiry. Exit 0 when the
    plan is signed with this project's key and not expired; 5 when the signature does not hold or it
    has expired (apply would refuse it); 2 when it is not a plan file. The stale-plan checks that
    need the database (server, configuration digest, findings) are apply's."""
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    data = read_plan_data(path)
    verdicts, code, signed = [], ExitCode.OK, True
    try:
        signing.verify(data, signing.plan_key(project), str(path))
        verdicts.append("signature: valid (signed with this project's plan key)")
    except PlanRefused as e:
        verdicts.append(f"signature: INVALID: {e.message}")
        code, signed = ExitCode.APPLY_REFUSED, False
    now = now or datetime.now(UTC)
    expires = datetime.fromisoformat(data["expires_at"])
    if expires <= now:
        verdicts.append(f"expiry: EXPIRED at {expires.isoformat()} (apply refuses it: make a new plan)")
        code = ExitCode.APPLY_REFUSED
    else:
        verdicts.append(f"expiry: valid until {expires.isoformat()} ({_left(expires - now)} left)")
    plan = Plan.from_dict(data)
    if fmt == "json":
        return Shown(json.dumps({"signature_valid": signed,
                                 "expired": expires <= now, "plan": plan.to_dict()}, indent=2, default=str) + "\n",
                     code)
    if fmt == "markdown":
        return Shown("".join(f"> {v}\n" for v in verdicts) + "\n" + render_markdown(plan), code)
    return Shown("".join(f"{v}\n" for v in verdicts) + render_text(plan), code)


def _left(delta) -> str:
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d {hours}h" if days else f"{hours}h {rest // 60}m"
