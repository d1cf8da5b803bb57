"""Baselines: accept today's findings, fail only on what is new or worse."""

from __future__ import annotations

import json
from pathlib import Path

from civicq_ops.core.errors import InputError
from civicq_ops.core.fileio import write_atomic
from civicq_ops.core.thresholds import SEVERITY
from civicq_ops.engine.findings import Finding

BASELINE_VERSION = "1.0"


def baseline_document(findings: list[Finding]) -> dict:
    return {
        "format_version": BASELINE_VERSION,
        "findings": {
            f.id: {"check": f.check, "target": f.target, "subject": f.subject, "status": f.status}
            for f in sorted(findings, key=lambda f: f.id) if f.status in ("warning", "critical")
        },
    }


def write_baseline(findings: list[Finding], path: str | Path) -> int:
    doc = baseline_document(findings)
    write_atomic(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return len(doc["findings"])


def load_baseline(path: str | Path) -> dict[str, str]:
    """finding id -> status accepted by the baseline."""
    try:
        doc = json.loads(Path(path).read_text())
        return {fid: entry["status"] for fid, entry in doc["findings"].items()}
    except FileNotFoundError:
        raise InputError(f"{path}: no such baseline file (write one with `civicq-ops baseline write {path}`)") from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise InputError(f"{path}: not a civicq-ops baseline ({e.__class__.__name__}: {e})") from e


def is_new_or_worse(finding: Finding, baseline: dict[str, str]) -> bool:
    accepted = baseline.get(finding.id)
    return accepted is None or SEVERITY[finding.status] > SEVERITY.get(accepted, 0)
