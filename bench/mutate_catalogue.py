"""Mutation run over the catalogue's SQL: do the real-database tests notice a wrong query?

Each mutant changes one thing in one check's query (or variant, or delta declaration): a comparison
operator flipped or loosened, AND turned into OR, a NOT dropped, a WHERE clause made always true,
a ratio's numerator swapped or its division turned into a multiplication, + into -, ASC for DESC,
greatest for least, max for min. A mutant that does not parse (pglast) is stillborn and not counted.
For every live mutant the script runs that check's tests in tests/engine/test_catalogue_real.py
against real PostgreSQL; a mutant is killed when they fail, and survives when they pass.

The repository's checks/ is never touched: the script copies it into a temporary folder, writes a
project file whose `paths.checks` points there, and runs the tests with CIVICQ_TEST_CONFIG naming it
(tests/fixtures/pg.py::shipped_catalog reads it). The copy is deleted at the end, also on Ctrl-C.

Usage: .venv/bin/python bench/mutate_catalogue.py [--check ID ...] [--sample N] [--seed S] [--major 18]
                                                  [--timeout 300] [--list]
Prints `killed/total` and every survivor (check, file:line, mutation).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from civicq_ops.core.capabilities import Capabilities  # noqa: E402
from civicq_ops.templating.render import render_query  # noqa: E402

TESTS = "tests/engine/test_catalogue_real.py"
# Tests beyond the per-check parametrised ones, by check (pytest -k words).
EXTRA_TESTS = {
    "table-bloat": ["bloat_estimate", "read_only_the_relations"],
    "index-bloat": ["read_only_the_relations"],
    "unused-indexes": ["foreign_key"],
    "duplicate-indexes": ["which_copy"],
    "not-valid-constraints": ["violating"],
    "autovacuum-falling-behind": ["autovacuum_is_off"],
    "table-cache-hit-ratio": ["cache_hit_ratios"],
    "database-cache-hit-ratio": ["minimum_params"],
    "rollback-ratio": ["minimum_params"],
    "checkpoints-requested": ["minimum_params"],
    "index-cache-hit-ratio": ["cache_hit_ratios"],
}
# Checks whose real tests live elsewhere.
OTHER_TEST_FILES = {"backup-freshness": "tests/backup/test_backup_real.py",
                    "backup-size-drop": "tests/backup/test_backup_real.py"}


@dataclass(frozen=True)
class Mutant:
    file: str  # relative to checks/
    line: int
    check: str
    start: int  # character offsets in the file
    end: int
    replacement: str
    description: str
    major: str = "18"  # a server this query runs on (the base query of a check with a >=17 variant: 15)

    def apply(self, text: str) -> str:
        return text[:self.start] + self.replacement + text[self.end:]


# -- finding mutation sites ----------------------------------------------------------------------------

_SKIP = re.compile(r"'(?:[^']|'')*'|--[^\n]*|\{\{.*?\}\}|\{%.*?%\}|\"(?:[^\"]|\"\")*\"", re.S)
_COMPARISONS = {">=": [">"], "<=": ["<"], "<>": ["="], "!=": ["="], ">": [">=", "<"], "<": ["<=", ">"], "=": ["<>"]}
_WORDS = {r"\bAND\b": "OR", r"\bDESC\b": "ASC", r"\bgreatest\(": "least(", r"\bleast\(": "greatest(",
          r"\bmax\(": "min(", r"\bmin\(": "max("}
_RATIO = re.compile(r"(?P<num>[\w.]+)(?P<cast>::float8)?\s*/\s*nullif\(\s*(?P<a>[\w.]+)\s*\+\s*(?P<b>[\w.]+)\s*,\s*0\s*\)",
                    re.I)


def _query_spans(text: str) -> list[tuple[str, int, int, str]]:
    """(check id, start, end, major) of every `query: |` block scalar (checks and variants): major is a
    PostgreSQL version the query runs on, 15 for a base query that a `server_version` variant replaces."""
    spans, check, offset = [], "?", 0
    version_variants = {m.group(1) for m in re.finditer(
        r"- id: ([\w-]+)\n(?:(?!  - id: ).*\n)*?\s+- when: \{server_version:", text)}
    in_variant = False
    lines = text.split("\n")
    i = 0
    starts = []
    for line in lines:
        starts.append(offset)
        offset += len(line) + 1
    while i < len(lines):
        line = lines[i]
        m = re.match(r"\s*- id: ([\w-]+)\s*$", line)
        if m:
            check, in_variant = m.group(1), False
        if re.match(r"\s*- when: \{server_version:", line):
            in_variant = True
        m = re.match(r"(\s*)query: \|\s*$", line)
        if m:
            indent = len(m.group(1))
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
                j += 1
            major = "15" if check in version_variants and not in_variant else "18"
            spans.append((check, starts[i + 1], starts[j - 1] + len(lines[j - 1]) if j - 1 > i else starts[i + 1],
                          major))
            i = j
            continue
        i += 1
    return spans


def _masked(sql: str) -> str:
    """The SQL with literals, comments, quoted names and Jinja blanked out (same length)."""
    return _SKIP.sub(lambda m: " " * len(m.group(0)), sql)


def find_mutants(path: Path, root: Path) -> list[Mutant]:
    text = path.read_text()
    rel = str(path.relative_to(root))
    out: list[Mutant] = []

    majors = {check_start: major for _, check_start, _, major in _query_spans(text)}

    def add(check: str, start: int, end: int, replacement: str, what: str) -> None:
        line = text.count("\n", 0, start) + 1
        major = majors[max([s for s in majors if s <= start] or [0])] if majors else "18"
        out.append(Mutant(rel, line, check, start, end, replacement, f"{what}: {text[start:end]!r} -> {replacement!r}",
                          major))

    for check, s, e, _major in _query_spans(text):
        sql = text[s:e]
        masked = _masked(sql)
        for m in re.finditer(r">=|<=|<>|!=|(?<![:=!<>~-])[<>=](?![=>~])", masked):
            for replacement in _COMPARISONS[m.group(0)]:
                add(check, s + m.start(), s + m.end(), replacement, "comparison")
        for pattern, replacement in _WORDS.items():
            for m in re.finditer(pattern, masked, re.I):
                add(check, s + m.start(), s + m.end(), replacement, "word")
        for m in re.finditer(r"\bNOT\s+", masked):
            add(check, s + m.start(), s + m.end(), "", "negation dropped")
        for m in re.finditer(r"\bWHERE\b", masked):
            add(check, s + m.start(), s + m.end(), "WHERE true OR", "WHERE clause dropped")
        for m in re.finditer(r"(?<=[\w)\s])/(?=[\s(\w])", masked):
            add(check, s + m.start(), s + m.end(), "*", "division")
        for m in re.finditer(r"(?<=[\w)\s])\+(?=[\s(\w])", masked):
            add(check, s + m.start(), s + m.end(), "-", "addition")
        for m in _RATIO.finditer(masked):
            num, a, b = m.group("num"), m.group("a"), m.group("b")
            other = b if num == a else a if num == b else None
            if other:
                add(check, s + m.start("num"), s + m.end("num"), other, "ratio numerator")
    for m in re.finditer(r"ratio_of: (\w+)", text):
        counters = re.search(r"counters: \[([^\]]*)\]", text[max(0, m.start() - 200):m.start()])
        names = [c.strip() for c in counters.group(1).split(",")] if counters else []
        check = ([c for c, s, _, _ in _query_spans(text) if s < m.start()] or ["?"])[-1]
        for other in [n for n in names if n != m.group(1)]:
            add(check, m.start(1), m.end(1), other, "delta ratio numerator")
    return out


def parses(mutant: Mutant, text: str) -> bool:
    """A mutant whose query does not render or parse is stillborn (the tests would catch it trivially)."""
    import pglast

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    for check in doc.get("checks", []):
        if check["id"] != mutant.check:
            continue
        params = {k: v.get("default") for k, v in (check.get("params") or {}).items()}
        caps = Capabilities(name="mutant")
        for query in [check["query"], *[v["query"] for v in check.get("variants", [])]]:
            try:
                pglast.parse_sql(render_query(query, {"params": params, "target": caps.to_context()}).numbered())
            except Exception:  # noqa: BLE001 - any render or parse failure makes the mutant stillborn
                return False
    return True


# -- running the tests -------------------------------------------------------------------------------------


# Every mutant also meets the whole catalogue on a clean, seeded CivicQ database: a query that lost a
# filter reports what is not there.
ALWAYS = ["clean_on_a_fresh"]


def _selector(check: str, major: str | None) -> list[str]:
    """This check's tests, on one major (None: both)."""
    words = [check, *EXTRA_TESTS.get(check, []), *ALWAYS]
    expr = " or ".join(words)
    if major:
        expr = f"({expr}) and pg{major}"
    return [OTHER_TEST_FILES.get(check, TESTS), "-k", expr]


_child: subprocess.Popen | None = None


def run_tests(check: str, config: Path, major: str | None, timeout: float) -> str:
    """'passed', 'failed', 'timeout' or 'no tests', for this check's real-database tests."""
    global _child
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *_selector(check, major)]
    env = {**os.environ, "CIVICQ_TEST_CONFIG": str(config)}
    _child = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        _child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop_child()
        return "timeout"
    code, _child = _child.returncode, None
    return {0: "passed", 1: "failed", 5: "no tests"}.get(code, f"error {code}")


def _stop_child() -> None:
    global _child
    if _child is not None and _child.poll() is None:
        os.killpg(_child.pid, signal.SIGTERM)  # our own child's process group (pytest and its servers' stop)
        try:
            _child.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(_child.pid, signal.SIGKILL)
    _child = None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="append", default=[], help="only these checks (repeatable)")
    ap.add_argument("--sample", type=int, help="run at most N mutants, chosen at random")
    ap.add_argument("--per-check", type=int, help="at most N mutants per check, chosen at random")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--major", default="auto",
                    help="PostgreSQL major to test on: 18, 15, all (both), or auto (the one each mutated query runs on)")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--rerun", help="only the mutants that survived in this --json file of an earlier run")
    args = ap.parse_args()
    major = None if args.major == "all" else args.major

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    work = Path(tempfile.mkdtemp(prefix="civicq-mutants-"))
    try:
        checks_copy = work / "checks"
        shutil.copytree(REPO / "checks", checks_copy)
        config = work / "civicq-ops.yaml"
        config.write_text(f"version: 1\npaths: {{checks: [{json.dumps(str(checks_copy))}]}}\n")
        mutants = [m for f in sorted(checks_copy.glob("*.yaml")) for m in find_mutants(f, checks_copy)]
        if args.check:
            mutants = [m for m in mutants if m.check in args.check]
        if args.rerun:
            survived = {(r["file"], r["line"], r["mutation"]) for r in json.loads(Path(args.rerun).read_text())
                        if r["outcome"] == "passed"}
            mutants = [m for m in mutants if (m.file, m.line, m.description) in survived]
        originals = {f: (checks_copy / f).read_text() for f in {m.file for m in mutants}}
        live = [m for m in mutants if parses(m, m.apply(originals[m.file]))]
        rng = random.Random(args.seed)
        if args.per_check:
            by_check: dict[str, list[Mutant]] = {}
            for m in live:
                by_check.setdefault(m.check, []).append(m)
            live = [m for ms in by_check.values() for m in rng.sample(ms, min(len(ms), args.per_check))]
        if args.sample and len(live) > args.sample:
            live = rng.sample(live, args.sample)
        live.sort(key=lambda m: (m.file, m.start))
        print(f"{len(mutants)} mutants, {len(mutants) - len([m for m in mutants if parses(m, m.apply(originals[m.file]))])}"
              f" stillborn, {len(live)} to run", flush=True)
        if args.list:
            for m in live:
                print(f"  {m.check} checks/{m.file}:{m.line} {m.description}")
            return 0
        def on(m: Mutant) -> str | None:
            return None if major is None else m.major if args.major == "auto" else major

        baseline = {(m.check, on(m)): "" for m in live}
        everything = run_tests(" or ".join(sorted({c for c, _ in baseline})), config, None, args.timeout * 4)
        for key in baseline:  # one run of every selected test first; per check only when it fails
            baseline[key] = "passed" if everything == "passed" else run_tests(key[0], config, key[1], args.timeout)
        broken = {c: r for c, r in baseline.items() if r != "passed"}
        if broken:
            print(f"tests do not pass on the unmutated catalogue, those checks are left out: {broken}", flush=True)
        results = []
        started = time.monotonic()
        for i, m in enumerate([m for m in live if (m.check, on(m)) not in broken], 1):
            path = checks_copy / m.file
            path.write_text(m.apply(originals[m.file]))
            try:
                outcome = run_tests(m.check, config, on(m), args.timeout)
            finally:
                path.write_text(originals[m.file])
            killed = outcome != "passed"
            results.append((m, outcome))
            print(f"[{i}] {'killed  ' if killed else 'SURVIVED'} {m.check} checks/{m.file}:{m.line} {m.description}"
                  f" (pg{on(m) or 'all'}: {outcome})", flush=True)
        killed = [m for m, o in results if o != "passed"]
        survivors = [m for m, o in results if o == "passed"]
        print(f"\nmutation score: {len(killed)}/{len(results)} killed"
              f" ({100 * len(killed) / max(1, len(results)):.0f}%) in {time.monotonic() - started:.0f} s")
        for m in survivors:
            print(f"  survivor: {m.check} checks/{m.file}:{m.line} {m.description}")
        if args.json:
            Path(args.json).write_text(json.dumps(
                [{"check": m.check, "file": m.file, "line": m.line, "mutation": m.description, "outcome": o}
                 for m, o in results], indent=1))
        return 0
    except KeyboardInterrupt:
        _stop_child()
        print("interrupted: checks/ was never modified; the mutated copy is removed", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
