"""What changed between two catalogues: checks, thresholds, params, policies, alert rules and
waivers added, removed or changed, each change said in words (`civicq-ops diff`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from civicq_ops.catalog.model import Catalog

# Long texts: a reviewer reads them in the pull request's own diff; here they are only "changed".
_TEXTS = {"query", "description", "recommendation", "message", "title", "annotations"}


@dataclass
class Change:
    """One object added, removed or changed, with what changed in it (`details`, in words)."""

    kind: str  # check | policy | alert | waiver
    key: str
    change: str  # added | removed | changed
    details: list[str] = field(default_factory=list)
    where: str | None = None  # file:line in the catalogue that has it (head, or base when removed)

    def sentence(self) -> str:
        text = f"{self.kind} {self.key} {self.change}"
        return text + (": " + "; ".join(self.details) if self.details else "")

    def to_dict(self) -> dict:
        return asdict(self)


def compare_catalogs(base: Catalog, head: Catalog) -> list[Change]:
    """Every difference between `base` and `head`, by kind then key."""
    changes: list[Change] = []
    for kind, before, after in (("check", _checks(base), _checks(head)), ("policy", _policies(base), _policies(head)),
                                ("alert", _alerts(base), _alerts(head)), ("waiver", _waivers(base), _waivers(head))):
        for key in sorted(set(before) | set(after)):
            if key not in after:
                changes.append(Change(kind, key, "removed", where=before[key][1]))
            elif key not in before:
                changes.append(Change(kind, key, "added", _summary(kind, after[key][0]), where=after[key][1]))
            else:
                details = differences(before[key][0], after[key][0])
                if details:
                    changes.append(Change(kind, key, "changed", details, where=after[key][1]))
    return changes


def differences(before: dict, after: dict, prefix: str = "") -> list[str]:
    """`thresholds.critical: gt 0.3 -> gt 0.2`, `params.min_rows.default: 1000 -> 10`, `query changed`."""
    out: list[str] = []
    for key in sorted(set(before) | set(after), key=str):
        path = f"{prefix}{key}"
        old, new = before.get(key, _MISSING), after.get(key, _MISSING)
        if old == new:
            continue
        if old is _MISSING:
            out.append(f"{path} added ({_text(new)})" if key not in _TEXTS else f"{path} added")
        elif new is _MISSING:
            out.append(f"{path} removed (was {_text(old)})" if key not in _TEXTS else f"{path} removed")
        elif key in _TEXTS:
            out.append(f"{path} changed")
        elif isinstance(old, dict) and isinstance(new, dict) and not _is_condition(old) and not _is_condition(new):
            out.extend(differences(old, new, path + "."))
        else:
            out.append(f"{path}: {_text(old)} -> {_text(new)}")
    return out


class _Missing:
    pass


_MISSING: Any = _Missing()


def _is_condition(value: dict) -> bool:
    """A threshold level (`{gt: 0.3}`) reads best whole: `gt 0.3`."""
    ops = {"gt", "gte", "lt", "lte", "eq", "ne", "between", "outside"}
    return bool(value) and set(value) <= ops


def _text(value: Any) -> str:
    if isinstance(value, dict) and _is_condition(value):
        return " and ".join(f"{op} {_text(v)}" for op, v in value.items())
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str, sort_keys=True)
    return str(value)


def _summary(kind: str, data: dict) -> list[str]:
    if kind == "check":
        levels = data.get("thresholds") or {}
        out = [f"{level} when {_text(cond)}" for level, cond in levels.items()]
        return out + ([f"remediation {data['remediation']}"] if data.get("remediation") else [])
    if kind == "policy":
        return [f"{data['action']} on {data['check']} ({data.get('level') or 'any level'}), mode {data['mode']}"]
    if kind == "alert":
        return [f"on {data['check']} ({data.get('level') or 'any level'})"]
    return [f"until {data['expires']}, owner {data['owner']}: {data['reason']}"]


def _where(source) -> str:
    return f"{source.path}:{source.line}"


def _checks(cat: Catalog) -> dict[str, tuple[dict, str]]:
    return {cid: (dict(c.raw), _where(c.source)) for cid, c in cat.checks.items()}


def _plain(obj) -> dict:
    data = asdict(obj)
    data.pop("source", None)
    return data


def _policies(cat: Catalog) -> dict[str, tuple[dict, str]]:
    return {p.id: (_plain(p), _where(p.source)) for p in cat.policies}


def _alerts(cat: Catalog) -> dict[str, tuple[dict, str]]:
    return {a.name: (_plain(a), _where(a.source)) for a in cat.alerts}


def _waivers(cat: Catalog) -> dict[str, tuple[dict, str]]:
    out = {}
    for w in cat.waivers:
        subject = ", ".join(f"{k}={v}" for k, v in sorted(w.subject.items()))
        key = w.check + (f" {{{subject}}}" if subject else "") + (f" on {w.target}" if w.target else "")
        out[key] = (_plain(w), _where(w.source))
    return out
