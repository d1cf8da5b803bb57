"""JUnit XML: one testsuite per category, one testcase per finding, with unique names.

A target that could not be reached is a testsuite `targets` with one error testcase per such
target, so a CI reading only JUnit never sees an empty, passing report.
"""

from __future__ import annotations

from collections import defaultdict
from xml.etree import ElementTree as ET

from civicq_ops.engine.run import RunResult
from civicq_ops.report.safe import xml_text


def render(result: RunResult) -> str:
    root = ET.Element("testsuites", name="civicq-ops", time=f"{result.duration_s:.3f}")
    by_category = defaultdict(list)
    for f in result.findings:
        by_category[f.category].append(f)
    gate = set(result.gate_failures)
    states = result.comparison.states if result.comparison else {}
    failed_targets = [t for t in result.targets if t.error]
    if failed_targets:
        suite = ET.SubElement(root, "testsuite", name="targets", tests=str(len(failed_targets)),
                              failures="0", errors=str(len(failed_targets)), skipped="0")
        names: dict[str, int] = {}
        for t in failed_targets:
            case = ET.SubElement(suite, "testcase", name=_unique(names, f"target[{xml_text(t.name)}]"),
                                 classname="civicq_ops.targets")
            ET.SubElement(case, "error", message=xml_text(t.error), type="unreachable").text = xml_text(t.error)
    for category in sorted(by_category):
        findings = by_category[category]
        suite = ET.SubElement(root, "testsuite", name=xml_text(category), tests=str(len(findings)))
        counts = {"failures": 0, "errors": 0, "skipped": 0}
        names = {}
        for f in findings:
            name = f"{f.check}[{f.target}" + (f":{f.subject_text()}" if f.subject else "") + "]"
            case = ET.SubElement(suite, "testcase", name=_unique(names, xml_text(name)),
                                 classname=xml_text(f"civicq_ops.{category}.{f.check}"))
            mark = f" ({states[f.id]} since the baseline)" if f.id in states else ""
            if f.status == "error":
                counts["errors"] += 1
                ET.SubElement(case, "error", message=xml_text(f.reason or f.message), type="error").text = xml_text(f.reason)
            elif f.status == "skipped":
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=xml_text(f.reason or ""))
            elif f.id in gate:
                counts["failures"] += 1
                body = f.message + mark + (f"\n{f.recommendation}" if f.recommendation else "")
                ET.SubElement(case, "failure", message=xml_text(f.message + mark), type=f.status).text = xml_text(body)
            elif f.status in ("warning", "critical"):
                note = ("waived: " + str(f.waiver["reason"]) if f.waiver else
                        f"{f.status}, accepted by the baseline{mark}" if f.id in states else f"{f.status} (below the gate)")
                ET.SubElement(case, "system-out").text = xml_text(f"{f.message}\n{note}")
        for k, v in counts.items():
            suite.set(k, str(v))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _unique(names: dict[str, int], name: str) -> str:
    """Two subjects that print alike (or two targets of one name) keep distinct test names."""
    if name in names:
        names[name] += 1
        return f"{name}#{names[name]}"
    names[name] = 1
    return name
