"""The offline test runner behind `civicq-ops test` and tests/test_yaml_cases.py.

A test file names a check and gives cases: rows standing in for the query's result, params, target
capabilities and a fixed clock; each case states the findings expected. The real engine evaluates
the rows (evaluate.py), so a passing case means the YAML check behaves as written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree as ET

from civicq_ops.catalog.load import LoadResult, load_catalog
from civicq_ops.catalog.model import Catalog
from civicq_ops.config import Project, Target
from civicq_ops.core.capabilities import Capabilities, unmet_requirement
from civicq_ops.core.diagnostics import Diagnostic
from civicq_ops.core.documents import LoadedDocument
from civicq_ops.core.errors import CivicqError, ExitCode, InputError
from civicq_ops.core.fileio import write_atomic
from civicq_ops.engine.delta import evaluate_delta, target_key
from civicq_ops.engine.evaluate import evaluate_counted
from civicq_ops.engine.findings import Finding
from civicq_ops.engine.run import render_check, resolve_params
from civicq_ops.remediation.plan import decide
from civicq_ops.report.catalog_views import Outcome, catalog_paths
from civicq_ops.report.validation import render as render_diagnostics
from civicq_ops.state.counters import MemoryCounters, Previous, subject_key
from civicq_ops.templating.render import NullFact


@dataclass
class CaseResult:
    file: str
    subject: str  # the check (or policy/alert) under test
    name: str
    line: int
    passed: bool
    skipped: str | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.subject}::{self.name}"


@dataclass
class TestReport:
    cases: list[CaseResult] = field(default_factory=list)
    untested_checks: list[str] = field(default_factory=list)
    untested_policies: list[str] = field(default_factory=list)
    untested_alerts: list[str] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    whole_catalogue: bool = True  # False when only some files ran: coverage is of theirs alone
    catalog: Catalog = field(default_factory=Catalog)

    @property
    def failed(self) -> list[CaseResult]:
        return [c for c in self.cases if not c.passed and not c.skipped]

    @property
    def exit_code(self) -> ExitCode:
        if [d for d in self.diagnostics if d.level == "error"]:
            return ExitCode.INVALID_INPUT
        return ExitCode.GATE_FAILED if self.failed else ExitCode.OK


def run_tests(paths: list[Path], *, today=None) -> TestReport:
    """Load checks, policies and test files under `paths` and run every case."""
    loaded = load_catalog(paths, today=today)
    report = TestReport(diagnostics=loaded.diagnostics, catalog=loaded.catalog)
    if loaded.errors:
        return report
    tested: set[str] = set()
    for doc in loaded.tests:
        report.cases.extend(run_test_file(doc, loaded))
        tested.add(doc.data.get("check") or doc.data.get("policy") or doc.data.get("alert"))
    report.untested_checks = sorted(set(loaded.catalog.checks) - tested)
    report.untested_policies = sorted({p.id for p in loaded.catalog.policies} - tested)
    report.untested_alerts = sorted(({a.name for a in loaded.catalog.alerts} | alert_builtins()) - tested)
    return report


def offline_tests(project: Project, given: list[str] | None, junit: str | None = None) -> Outcome:
    """`civicq-ops test`: run the offline tests under the given paths (with the project's checks and
    policies, which the tests name) or the project's own; text out, JUnit XML to `junit` if asked.
    Exit 2 when the YAML is invalid (nothing ran), 1 when a case failed."""
    paths = catalog_paths(project, given)
    if given:  # tests given alone still need the checks they name
        paths = [*paths, *project.paths("checks"), *project.paths("policies")]
    report = run_tests(paths)
    if report.exit_code == ExitCode.INVALID_INPUT:
        return Outcome(render_diagnostics(report.diagnostics, "text", 0), report.exit_code)
    if given:  # the cases of the given files only, and none is bad input (a wrong path passes nothing)
        roots = [Path(g).resolve() for g in given]
        report.cases = [c for c in report.cases
                        if any(Path(c.file).resolve().is_relative_to(root) for root in roots)]
        # Coverage of what the given files define (builtin alert rules belong to no file).
        catalog = report.catalog

        def given_defines(source) -> bool:
            return source is not None and any(Path(source.path).resolve().is_relative_to(r) for r in roots)

        report.untested_checks = [c for c in report.untested_checks
                                  if c in catalog.checks and given_defines(catalog.checks[c].source)]
        policies = {p.id: p for p in catalog.policies}
        report.untested_policies = [p for p in report.untested_policies
                                    if p in policies and given_defines(policies[p].source)]
        alerts = {a.name: a for a in catalog.alerts}
        report.untested_alerts = [a for a in report.untested_alerts
                                  if a in alerts and given_defines(alerts[a].source)]
        report.whole_catalogue = False
        if not report.cases:
            raise InputError(f"no test cases under {', '.join(given)}: a test file has a 'cases:' key")
    if junit:
        write_atomic(junit, render_junit(report))
    return Outcome(render_text(report), report.exit_code)


def run_test_file(doc: LoadedDocument, loaded: LoadResult) -> list[CaseResult]:
    data = doc.data
    results = []
    what = data.get("check") or data.get("policy") or data.get("alert")
    for name, case in data["cases"].items():
        line = doc.position(("cases", name))[0]
        result = CaseResult(doc.path, what, name, line, passed=False)
        if case.get("skip"):
            result.skipped = case["skip"]
            results.append(result)
            continue
        try:
            run = _run_check_case if "check" in data else _run_policy_case if "policy" in data else _run_alert_case
            result.failures = run(data, case, loaded)
        except CivicqError as e:
            result.failures = [f"the case could not run: {e.message}"]
        result.passed = not result.failures
        results.append(result)
    return results


def _merged(data: dict, case: dict, key: str) -> dict:
    return {**(data.get(key) or {}), **(case.get(key) or {})}


def _run_check_case(data: dict, case: dict, loaded: LoadResult) -> list[str]:
    check = loaded.catalog.checks.get(data["check"])
    if check is None:
        return [f"no check '{data['check']}' in the catalog"]
    if "expect" not in case or "findings" not in case["expect"]:
        return ["the case states no expect.findings: it could never fail"]
    params = resolve_params(check, _merged(data, case, "params"))
    caps = Capabilities.from_test_spec(_merged(data, case, "target"))
    given = _merged(data, case, "facts")
    unknown = sorted(set(given) - set(check.facts))
    if unknown:
        return [f"the case gives facts {', '.join(unknown)}, which check '{check.id}' does not declare (facts:)"]
    # A declared fact the case does not give reads as NULL throughout, as in validate.
    facts = {name: NullFact(given.get(name) or {}) for name in check.facts}
    now_text = case.get("now") or data.get("now")
    now = datetime.fromisoformat(now_text.replace("Z", "+00:00")) if now_text else datetime(2026, 1, 1, tzinfo=UTC)
    unavailable = _merged(data, case, "unavailable")  # as a provider raising FactUnavailable
    reason = unmet_requirement(check.requires, caps) or next(
        (unavailable[name] for name in check.facts if name in unavailable), None)
    if reason:
        actual = [Finding(check=check.id, category=check.category, target=caps.name, subject=None,
                          status="skipped", reason=reason)]
    else:
        render_check(check, params, caps, facts)  # the template must render with these params, target and facts
        if check.delta is not None:
            actual = evaluate_delta(check, case.get("rows", []), params, caps, _previous(check, case, caps), now)
        else:
            actual, _counted = evaluate_counted(check, case.get("rows", []), params, caps, now, facts)
    return compare(case["expect"]["findings"], actual)


def _previous(check, case: dict, caps: Capabilities):
    """`previous: {at: TIME, rows: [...]}`: the counters a previous run saw, for `delta:` checks."""
    spec = case.get("previous") or {}
    entries = {subject_key({c: row.get(c) for c in check.subject}):
               Previous({c: float(row.get(c) or 0) for c in check.delta.counters},
                        str(spec.get("at", "2025-12-31T23:00:00+00:00")))
               for row in spec.get("rows", [])}
    return MemoryCounters({(target_key(caps), check.id): entries})


def _run_policy_case(data: dict, case: dict, loaded: LoadResult) -> list[str]:
    """Findings and a clock in, planned and blocked actions out, through the real planner."""
    policies = [p for p in loaded.catalog.policies if p.id == data["policy"]]
    if not policies:
        return [f"no policy '{data['policy']}' in the catalog"]
    if "expect" not in case or "actions" not in case["expect"]:
        return ["the case states no expect.actions: it could never fail"]
    spec = _merged(data, case, "target")
    target = Target(name=spec.get("name", "offline"), url="offline", environment=spec.get("environment", "production"))
    now_text = case.get("now") or data.get("now") or "2026-01-01T00:00:00Z"
    now = datetime.fromisoformat(now_text.replace("Z", "+00:00"))
    findings = []
    for i, f in enumerate(case.get("findings", [])):
        check = loaded.catalog.checks.get(f.get("check", policies[0].check))
        findings.append(Finding(check=f.get("check", policies[0].check), category=check.category if check else "x",
                                target=target.name, subject=f.get("subject"), status=f.get("status", "critical"),
                                value=f.get("value"), evidence=f.get("evidence", {}), message=f"finding {i + 1}"))
    history = {(h["policy"], h["object"]): h["at"] for h in case.get("history", [])}
    actions, blocked = decide(findings, policies, loaded.catalog, target, now,
                              lambda policy, obj: history.get((policy, obj)))
    failures = []
    got = [{"action": a.action, "object": a.object_name} for a in actions]
    want = [{"action": e.get("action", policies[0].action), "object": e["object"]} for e in case["expect"]["actions"]]
    if got != want:
        failures.append(f"expected actions {want}, planned {got}"
                        + (f"; blocked: {[(b.object_name, b.reason) for b in blocked]}" if blocked else ""))
    for exp in case["expect"].get("blocked", []):
        if not any(b.object_name == exp["object"] and exp.get("reason_contains", "") in b.reason for b in blocked):
            failures.append(f"expected {exp['object']} blocked ({exp.get('reason_contains', '')}), "
                            f"blocked: {[(b.object_name, b.reason) for b in blocked]}")
    return failures


def alert_builtins() -> set[str]:
    from civicq_ops.alerts.model import BUILTIN_RULES

    return set(BUILTIN_RULES)


def _run_alert_case(data: dict, case: dict, loaded: LoadResult) -> list[str]:
    """Runs at t0, t1, ... in; the rule's alerts (pending, firing, resolved) at the stated times out."""
    from civicq_ops.alerts.testcase import run_alert_case

    return run_alert_case(data, case, loaded.catalog)


def compare(expected: list[dict], actual: list[Finding]) -> list[str]:
    """Identity (subject, status) strictly; text only where the case writes it."""
    failures = []
    remaining = list(actual)
    for exp in expected:
        match = None
        for f in remaining:
            if "subject" in exp and (exp["subject"] or None) != _norm(f.subject):
                continue
            if "subject" not in exp and "status" in exp and f.status != exp["status"]:
                continue
            match = f
            break
        if match is None:
            failures.append(f"expected a finding {_show(exp)}, found none; actual: {_actual(actual)}")
            continue
        remaining.remove(match)
        for key in ("status", "confidence"):
            if key in exp and getattr(match, key) != exp[key]:
                failures.append(f"{_where(match)}: expected {key} {exp[key]!r}, got {getattr(match, key)!r}"
                                + (f" ({match.reason})" if match.reason else ""))
        if "value" in exp and not _same_value(exp["value"], match.value):
            failures.append(f"{_where(match)}: expected value {exp['value']!r}, got {match.value!r}")
        for key in ("message", "recommendation"):
            if key in exp and (getattr(match, key) or "") != exp[key]:
                failures.append(f"{_where(match)}: expected {key}\n    {exp[key]!r}\n  got\n    {getattr(match, key)!r}")
            if f"{key}_contains" in exp and exp[f"{key}_contains"] not in (getattr(match, key) or ""):
                failures.append(f"{_where(match)}: {key} does not contain {exp[key + '_contains']!r}: "
                                f"{getattr(match, key)!r}")
        if "reason_contains" in exp and exp["reason_contains"] not in (match.reason or ""):
            failures.append(f"{_where(match)}: reason does not contain {exp['reason_contains']!r}: {match.reason!r}")
    for f in remaining:
        if f.status != "ok":
            failures.append(f"unexpected finding {_where(f)} status {f.status}: {f.message or f.reason}")
    return failures


def _norm(subject):
    return subject or None


def _same_value(want, got) -> bool:
    try:
        return abs(float(want) - float(got)) <= 1e-9 * max(1.0, abs(float(want)))
    except (TypeError, ValueError):
        return want == got


def _where(f: Finding) -> str:
    return f"[{f.subject_text() if f.subject else 'no subject'}]"


def _show(exp: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in exp.items())


def _actual(actual: list[Finding]) -> str:
    return "; ".join(f"{_where(f)} {f.status}" for f in actual) or "none"


def render_junit(report: TestReport) -> str:
    root = ET.Element("testsuites", name="civicq-ops test")
    by_file: dict[str, list[CaseResult]] = {}
    for c in report.cases:
        by_file.setdefault(c.file, []).append(c)
    for path, cases in by_file.items():
        suite = ET.SubElement(root, "testsuite", name=path, tests=str(len(cases)),
                              failures=str(sum(1 for c in cases if not c.passed and not c.skipped)),
                              skipped=str(sum(1 for c in cases if c.skipped)))
        for c in cases:
            case = ET.SubElement(suite, "testcase", name=c.id, classname=path, file=path, line=str(c.line))
            if c.skipped:
                ET.SubElement(case, "skipped", message=c.skipped)
            elif not c.passed:
                ET.SubElement(case, "failure", message=c.failures[0].splitlines()[0]).text = "\n".join(c.failures)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render_text(report: TestReport) -> str:
    lines = []
    for c in report.cases:
        mark = "SKIP" if c.skipped else "PASS" if c.passed else "FAIL"
        lines.append(f"{mark} {c.file}:{c.line} {c.id}" + (f" ({c.skipped})" if c.skipped else ""))
        for failure in c.failures:
            lines.append("     " + failure.replace("\n", "\n     "))
    passed = sum(1 for c in report.cases if c.passed)
    failed = len(report.failed)
    skipped = sum(1 for c in report.cases if c.skipped)
    if report.untested_checks:
        lines.append(f"coverage: {len(report.untested_checks)} check(s) without a test: "
                     + ", ".join(report.untested_checks))
    elif report.whole_catalogue:
        lines.append("coverage: every check has a test")
    if report.untested_policies:
        lines.append(f"coverage: {len(report.untested_policies)} policy(ies) without a test: "
                     + ", ".join(report.untested_policies))
    if report.untested_alerts:
        lines.append(f"coverage: {len(report.untested_alerts)} alert rule(s) without a test: "
                     + ", ".join(report.untested_alerts))
    lines.append(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return "\n".join(lines) + "\n"
