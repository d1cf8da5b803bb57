"""`civicq-ops diff`: what a pull request changes in the catalogue, in words, and (with a target)
what that does to the findings and to the plan.

The base catalogue is read from git (`git archive` of the catalogue folders at BASE into a temporary
folder: the work tree is never touched) or from a folder. With a target, the checks of both
catalogues run ONCE against it (engine/shared.py: one probe, each distinct rendered query sent
once) and are judged twice, so the findings and plans of BASE and HEAD differ only by the change.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from civicq_ops.catalog.compare import Change, compare_catalogs
from civicq_ops.catalog.load import discover, load_catalog
from civicq_ops.catalog.model import Catalog
from civicq_ops.config import Project, Target
from civicq_ops.core.errors import ExecutionError, InputError
from civicq_ops.core.thresholds import SEVERITY
from civicq_ops.engine.findings import Finding
from civicq_ops.engine.run import RunOptions, Selection, run_checks
from civicq_ops.engine.shared import SharedResults
from civicq_ops.facts import default_providers
from civicq_ops.postgres.connect import connect
from civicq_ops.remediation.facts import DatabaseFacts, TableActivity
from civicq_ops.remediation.plan import Plan, make_plan, target_identity
from civicq_ops.report.markdown import _esc

FORMATS = ("text", "markdown", "json")
GIT_TIMEOUT_S = 60


@dataclass
class FindingChange:
    id: str
    check: str
    subject: str
    before: str | None  # status under BASE (None: no such finding), "waived" shown apart
    after: str | None
    value: object = None
    waived_before: bool = False
    waived_after: bool = False

    def sentence(self) -> str:
        def level(status: str | None, waived: bool) -> str:
            return "absent" if status is None else status + (" (waived)" if waived else "")

        return (f"{self.check} {self.subject}: {level(self.before, self.waived_before)} -> "
                f"{level(self.after, self.waived_after)}" + (f" (value {self.value})" if self.value is not None else ""))


@dataclass
class PlanChange:
    change: str  # added | removed | changed | blocked | unblocked
    action: str
    object_name: str
    policy: str
    detail: str = ""

    def sentence(self) -> str:
        verb = {"added": "adds", "removed": "removes", "changed": "changes", "blocked": "blocks",
                "unblocked": "no longer blocks"}[self.change]
        return f"{verb} {self.action} of {self.object_name} [policy {self.policy}]" + \
            (f": {self.detail}" if self.detail else "")


@dataclass
class TargetDiff:
    target: str
    findings: list[FindingChange] = field(default_factory=list)
    plan: list[PlanChange] = field(default_factory=list)
    queries_sent: int = 0
    queries_reused: int = 0

    def headline(self) -> str:
        """`turns 2 findings critical, adds vacuum of public.votes to the plan`."""
        parts = []
        turned: dict[str, int] = {}
        for f in self.findings:
            after = "waived" if f.waived_after and not f.waived_before else (f.after or "absent")
            turned[after] = turned.get(after, 0) + 1
        for status in ("critical", "warning", "error", "waived", "ok", "skipped", "absent"):
            if turned.get(status):
                n = turned[status]
                parts.append(f"turns {n} finding{'s' if n != 1 else ''} {status}")
        for p in self.plan:
            if p.change in ("added", "removed"):
                parts.append(f"{'adds' if p.change == 'added' else 'removes'} {p.action} of {p.object_name} "
                             f"{'to' if p.change == 'added' else 'from'} the plan")
        return ", ".join(parts) if parts else "changes no finding and no planned action"


@dataclass
class CatalogueDiff:
    base: str
    head: str
    changes: list[Change]
    targets: list[TargetDiff] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"format_version": "1.0", "base": self.base, "head": self.head,
                "changes": [c.to_dict() for c in self.changes],
                "targets": [{**asdict(t), "headline": t.headline()} for t in self.targets]}


def diff(project: Project, base: str, head: str | None = None, targets: list[Target] | None = None,
         now: datetime | None = None) -> CatalogueDiff:
    """Compare the catalogue at `base` (a git ref, or a folder when `head` is given) with `head` (a
    folder; default: the project's catalogue in the work tree); with `targets`, evaluate both."""
    for given in (base, head):
        if given is not None and not given.strip():
            raise InputError("an empty BASE or HEAD: name a git ref, or two catalogue folders")
    if head is not None:
        for folder in (base, head):
            if not Path(folder).exists():
                raise InputError(f"{folder}: no such file or folder (with two arguments, both are catalogue folders)")
            if not discover([Path(folder)], include_tests=False):
                raise InputError(f"{folder}: no YAML files: not a catalogue folder")
    with _base_paths(project, base, head is not None) as base_paths:
        head_paths = [Path(head)] if head is not None else _project_paths(project)
        base_cat = _load(base_paths, project, f"{base} (base)")
        head_cat = _load(head_paths, project, head or "the work tree")
        result = CatalogueDiff(base=base, head=head or "work tree", changes=compare_catalogs(base_cat, head_cat))
        for target in targets or []:
            result.targets.append(evaluate_both(project, target, base_cat, head_cat, now))
    return result


def evaluate_both(project: Project, target: Target, base: Catalog, head: Catalog,
                  now: datetime | None = None) -> TargetDiff:
    """The findings and the plan under each catalogue, from one run's worth of queries."""
    now = now or datetime.now(UTC)
    shared = SharedResults()
    runs: dict[str, list[Finding]] = {}
    for side, cat in (("head", head), ("base", base)):
        if not cat.checks:
            runs[side] = []
            continue
        result = run_checks(project, [target], cat, Selection(),
                            RunOptions(facts=default_providers(project), shared=shared, now=now))
        if result.errors:
            raise ExecutionError(result.errors[0]["message"])
        runs[side] = result.findings
    out = TargetDiff(target.name, findings=_finding_changes(runs["base"], runs["head"]))
    identity = target_identity(project, target)
    with connect(project, target, autocommit=True) as conn:
        facts = _RememberedFacts(DatabaseFacts(conn))
        plans = {side: make_plan(project, target, cat, runs[side], identity, now=now, facts=facts)
                 for side, cat in (("base", base), ("head", head))}
    out.plan = _plan_changes(plans["base"], plans["head"])
    out.queries_sent, out.queries_reused = shared.queries_sent, shared.queries_reused
    return out


class _RememberedFacts:
    """DatabaseFacts asked once per question: both plans see the same answers."""

    def __init__(self, facts: DatabaseFacts) -> None:
        self.facts = facts
        self.answers: dict[tuple, Any] = {}

    def _ask(self, name: str, *args: Any) -> Any:
        key = (name, *args)
        if key not in self.answers:
            self.answers[key] = getattr(self.facts, name)(*args)
        return self.answers[key]

    def old_snapshots(self, older_than_s: float) -> list[str]:
        return list(self._ask("old_snapshots", older_than_s))

    def table_activity(self, schema: str, name: str) -> TableActivity | None:
        return self._ask("table_activity", schema, name)

    def can_refresh_concurrently(self, schema: str, name: str) -> bool:
        return bool(self._ask("can_refresh_concurrently", schema, name))

    def current_database(self) -> str | None:
        return self._ask("current_database")


def _finding_changes(base: list[Finding], head: list[Finding]) -> list[FindingChange]:
    before = {f.id: f for f in base}
    after = {f.id: f for f in head}
    out = []
    for fid in sorted(set(before) | set(after), key=lambda i: (after.get(i) or before[i]).check):
        b, a = before.get(fid), after.get(fid)
        if b is not None and a is not None and (b.status, b.waived) == (a.status, a.waived):
            continue
        if (b is None or b.status in ("ok", "skipped")) and (a is None or a.status in ("ok", "skipped")) \
                and not (b and b.waived) and not (a and a.waived):
            continue  # a check added or removed that finds nothing: nothing to review
        f = a or b
        assert f is not None
        out.append(FindingChange(fid, f.check, f.subject_text(), b.status if b else None, a.status if a else None,
                                 value=f.value, waived_before=bool(b and b.waived), waived_after=bool(a and a.waived)))
    out.sort(key=lambda c: (-SEVERITY.get(c.after or "ok", 0), c.check, c.subject))
    return out


def _plan_changes(base: Plan, head: Plan) -> list[PlanChange]:
    def key(x) -> tuple[str, str, str]:
        return (x.policy, x.action, x.object_name)

    out: list[PlanChange] = []
    before, after = {key(a): a for a in base.actions}, {key(a): a for a in head.actions}
    for k in sorted(set(before) | set(after)):
        if k not in before:
            out.append(PlanChange("added", k[1], k[2], k[0], "; ".join(after[k].sql)))
        elif k not in after:
            out.append(PlanChange("removed", k[1], k[2], k[0]))
        elif before[k].sql != after[k].sql:
            out.append(PlanChange("changed", k[1], k[2], k[0], "; ".join(after[k].sql)))
    blocked_before, blocked_after = {key(b): b for b in base.blocked}, {key(b): b for b in head.blocked}
    for k in sorted(set(blocked_before) | set(blocked_after)):
        if k not in blocked_before:
            out.append(PlanChange("blocked", k[1], k[2], k[0], blocked_after[k].reason))
        elif k not in blocked_after:
            out.append(PlanChange("unblocked", k[1], k[2], k[0]))
    return out


def _project_paths(project: Project) -> list[Path]:
    return project.paths("checks") + project.paths("policies")


def _load(paths: list[Path], project: Project, label: str) -> Catalog:
    result = load_catalog(paths, notifiers=set(project.notifiers), parse_sql=False, include_tests=False)
    if result.errors:
        first = result.errors[0]
        raise InputError(f"the catalogue of {label} is not valid: {first.path}:{first.line}:{first.col}: "
                         f"{first.message}")
    return result.catalog


@contextmanager
def _base_paths(project: Project, base: str, is_path: bool) -> Iterator[list[Path]]:
    if is_path:
        yield [Path(base)]
        return
    with tempfile.TemporaryDirectory(prefix="civicq-diff-") as tmp:
        yield catalogue_at_ref(project, base, Path(tmp))


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, stdin=subprocess.DEVNULL,
                              timeout=GIT_TIMEOUT_S)
    except FileNotFoundError:
        raise InputError("git is not installed: give two catalogue folders instead (diff BASE_DIR HEAD_DIR)") from None
    except subprocess.TimeoutExpired:
        raise ExecutionError(f"git {args[0]} took more than {GIT_TIMEOUT_S}s") from None


def catalogue_at_ref(project: Project, ref: str, into: Path) -> list[Path]:
    """The project's catalogue folders as they were at `ref`, extracted under `into`."""
    root = project.root.resolve()
    top = _git(root, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise InputError(f"{root} is not in a git repository: give two catalogue folders instead")
    toplevel = Path(top.stdout.decode().strip()).resolve()
    if ref.startswith("-") or _git(toplevel, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").returncode:
        raise InputError(f"unknown git ref '{ref}' (a branch, tag or commit of {toplevel})")
    wanted: list[tuple[Path, str]] = []  # (where the folder lands, its path in the repository)
    out: list[Path] = []
    for folder in _project_paths(project):
        try:
            rel = folder.resolve().relative_to(toplevel).as_posix()
        except ValueError:
            out.append(folder)  # outside the repository (the shipped catalogue): the same on both sides
            continue
        wanted.append((into / rel, rel))
    listed = _git(toplevel, "ls-tree", "-r", "-z", "--name-only", ref, "--", *[rel for _, rel in wanted])
    present = [name for name in listed.stdout.decode().split("\0") if name]
    if present:
        archive = _git(toplevel, "archive", "--format=tar", ref, "--", *present)
        if archive.returncode != 0:
            raise ExecutionError(f"git archive {ref} failed: "
                                 f"{(archive.stderr.decode().strip().splitlines() or ['no output'])[-1]}")
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(into, filter="data")
    return out + [landed for landed, _ in wanted if landed.exists()]


def render(result: CatalogueDiff, fmt: str) -> str:
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt == "json":
        return json.dumps(result.to_dict(), indent=2, default=str) + "\n"
    return render_markdown(result) if fmt == "markdown" else render_text(result)


def render_text(result: CatalogueDiff) -> str:
    lines = [f"catalogue changes from {result.base} to {result.head}:"]
    lines += [f"  {c.sentence()}" for c in result.changes] or ["  none"]
    for t in result.targets:
        lines.append(f"\non {t.target}: this change {t.headline()}")
        lines += [f"  finding {f.sentence()}" for f in t.findings]
        lines += [f"  plan: {p.sentence()}" for p in t.plan]
        lines.append(f"  ({t.queries_sent} queries sent, {t.queries_reused} answered from the same results)")
    return "\n".join(lines) + "\n"


def render_markdown(result: CatalogueDiff) -> str:
    """A pull request comment."""
    lines = [f"### civicq-ops: what this change does ({_esc(result.base)} → {_esc(result.head)})", ""]
    if not result.changes:
        lines.append("No check, threshold, param, policy, alert rule or waiver changed.")
    else:
        lines += ["| kind | name | change | details |", "| --- | --- | --- | --- |"]
        lines += [f"| {c.kind} | `{_esc(c.key)}` | {c.change} | {_esc('; '.join(c.details))} |" for c in result.changes]
    for t in result.targets:
        lines += ["", f"**On `{_esc(t.target)}`**, this change {_esc(t.headline())}."]
        if t.findings:
            lines += ["", "| check | subject | base | head |", "| --- | --- | --- | --- |"]
            for f in t.findings:
                b = (f.before or "absent") + (" (waived)" if f.waived_before else "")
                a = (f.after or "absent") + (" (waived)" if f.waived_after else "")
                lines.append(f"| `{_esc(f.check)}` | {_esc(f.subject)} | {b} | **{a}** |")
        if t.plan:
            lines += ["", "Plan:"] + [f"- {_esc(p.sentence())}" for p in t.plan]
        lines += ["", f"<sub>{t.queries_sent} queries sent once and judged under both catalogues.</sub>"]
    return "\n".join(lines) + "\n"
