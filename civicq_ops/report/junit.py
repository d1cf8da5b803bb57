"""JUnit XML: one testsuite per category, one testcase per finding, with unique names."""

from __future__ import annotations

from collections import defaultdict
from xml.etree import ElementTree as ET

from civicq_ops.engine.run import RunResult


def render(result: RunResult) -> str:
    root = ET.Element("testsuites", name="civicq-ops", time=f"{result.duration_s:.3f}")
    by_category = defaultdict(list)
    for f in result.findings:
        by_category[f.category].append(f)
    gate = set(result.gate_failures)
    for category in sorted(by_category):
        findings = by_category[category]
        suite = ET.SubElement(root, "testsuite", name=category, tests=str(len(findings)))
        counts = {"failures": 0, "errors": 0, "skipped": 0}
        names: dict[str, int] = {}
        for f in findings:
            name = f"{f.check}[{f.target}" + (f":{f.subject_text()}" if f.subject else "") + "]"
            if name in names:  # two subjects that print alike: keep names unique
                names[name] += 1
                name = f"{name}#{names[name]}"
            else:
                names[name] = 1
            case = ET.SubElement(suite, "testcase", name=name, classname=f"civicq_ops.{category}.{f.check}")
            if f.status == "error":
                counts["errors"] += 1
                ET.SubElement(case, "error", message=f.reason or f.message, type="error").text = f.reason
            elif f.status == "skipped":
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=f.reason or "")
            elif f.id in gate:
                counts["failures"] += 1
                body = f.message + (f"\n{f.recommendation}" if f.recommendation else "")
                ET.SubElement(case, "failure", message=f.message, type=f.status).text = body
            elif f.status in ("warning", "critical"):
                note = "waived: " + f.waiver["reason"] if f.waiver else f"{f.status} (below the gate)"
                ET.SubElement(case, "system-out").text = f"{f.message}\n{note}"
        for k, v in counts.items():
            suite.set(k, str(v))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
