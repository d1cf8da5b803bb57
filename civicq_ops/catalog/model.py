"""The catalog's model: checks, policies, alert rules and waivers, as loaded from YAML."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from civicq_ops.core.thresholds import Thresholds
from civicq_ops.core.units import parse_duration

DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Source:
    """Where a definition lives, for diagnostics and SARIF."""

    path: str
    line: int
    col: int = 1
    index: int = 0  # position in its file's list (checks, policies, alerts, waivers)


@dataclass
class Param:
    name: str
    type: str
    default: Any = None
    items: str | None = None
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    enum: list | None = None
    pattern: str | None = None  # a Python regular expression the whole value must match


@dataclass
class Variant:
    when: dict
    query: str
    source: Source | None = None


@dataclass(frozen=True)
class CheckObject:
    """What a remediation of this check acts on: a kind, and the output columns naming the object
    (schema and name, or a backend's pid) and holding its size. Declared, never guessed."""

    kind: str  # table | index | matview | backend | database
    schema: str | None = None
    name: str | None = None
    pid: str | None = None
    size: str | None = None

    @classmethod
    def from_dict(cls, data: dict | None) -> CheckObject | None:
        if not data:
            return None
        return cls(kind=data["kind"], schema=data.get("schema"), name=data.get("name"), pid=data.get("pid"),
                   size=data.get("size"))

    def columns(self) -> list[str]:
        return [c for c in (self.schema, self.name, self.pid, self.size) if c]


@dataclass
class Delta:
    """Counters judged over recent activity (engine/delta.py): their increase since the previous run."""

    counters: list[str]
    min_total: str | None = None  # a param: the fewest accesses (sum of increases) worth judging
    ratio_of: str | None = None  # value = this counter's increase / the sum of the increases

    @classmethod
    def from_dict(cls, data: dict | None) -> Delta | None:
        if not data:
            return None
        return cls(counters=list(data["counters"]), min_total=data.get("min_total"), ratio_of=data.get("ratio_of"))


@dataclass
class Check:
    id: str
    title: str
    category: str
    query: str
    source: Source
    description: str = ""
    tags: list[str] = field(default_factory=list)
    requires: dict = field(default_factory=dict)
    facts: list[str] = field(default_factory=list)  # runner facts its templates read (engine/facts.py)
    params: dict[str, Param] = field(default_factory=dict)
    variants: list[Variant] = field(default_factory=list)
    subject: list[str] = field(default_factory=list)
    value: str | None = None
    unit: str | None = None
    thresholds: Thresholds | None = None
    level: str | None = None
    on_empty: str = "ok"
    on_null: str = "ok"
    timeout_s: float = DEFAULT_TIMEOUT_S
    message: str | None = None
    recommendation: str | None = None
    remediation: str | None = None
    object: CheckObject | None = None
    delta: Delta | None = None
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: dict, source: Source) -> Check:
        params = {
            name: Param(name=name, type=spec["type"], default=spec.get("default"), items=spec.get("items"),
                        description=spec.get("description", ""), minimum=spec.get("minimum"),
                        maximum=spec.get("maximum"), enum=spec.get("enum"),
                        pattern=spec.get("pattern"))
            for name, spec in (data.get("params") or {}).items()
        }
        return cls(
            id=data["id"], title=data["title"], category=data["category"], query=data["query"], source=source,
            description=data.get("description", ""), tags=list(data.get("tags", [])),
            requires=dict(data.get("requires") or {}), facts=list(data.get("facts", [])), params=params,
            variants=[Variant(v["when"], v["query"]) for v in data.get("variants", [])],
            subject=list(data.get("subject", [])), value=data.get("value"), unit=data.get("unit"),
            thresholds=Thresholds.parse(data.get("thresholds"), data.get("unit")), level=data.get("level"),
            on_empty=data.get("on_empty", "ok"), on_null=data.get("on_null", "ok"),
            timeout_s=parse_duration(data["timeout"]) if "timeout" in data else DEFAULT_TIMEOUT_S,
            message=data.get("message"), recommendation=data.get("recommendation"),
            remediation=data.get("remediation"), object=CheckObject.from_dict(data.get("object")),
            delta=Delta.from_dict(data.get("delta")), raw=data,
        )

    def default_params(self) -> dict[str, Any]:
        return {name: p.default for name, p in self.params.items()}


@dataclass
class Policy:
    id: str
    check: str
    action: str
    source: Source
    level: str | None = None
    value: dict | None = None
    options: dict = field(default_factory=dict)
    mode: str = "plan"
    environments: list[str] = field(default_factory=list)
    window: dict | None = None
    limits: dict = field(default_factory=dict)
    description: str = ""

    @classmethod
    def from_dict(cls, data: dict, source: Source) -> Policy:
        when = data["when"]
        return cls(id=data["id"], check=when["check"], level=when.get("level"), value=when.get("value"),
                   action=data["action"], source=source, options=dict(data.get("options") or {}),
                   mode=data.get("mode", "plan"), environments=list(data.get("environments", [])),
                   window=data.get("window"), limits=dict(data.get("limits") or {}),
                   description=data.get("description", ""))


@dataclass
class AlertRule:
    """A Prometheus-style alert over a check's findings: active where `when` (and `expr`) hold."""

    name: str
    check: str
    source: Source
    level: str | None = None
    value: dict | None = None
    subject: dict = field(default_factory=dict)
    expr: str | None = None
    for_s: float = 0.0
    keep_firing_for_s: float = 0.0
    severity: str | None = None
    description: str = ""
    labels: dict = field(default_factory=dict)
    annotations: dict = field(default_factory=dict)
    notify: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict, source: Source) -> AlertRule:
        when = data["when"]
        return cls(name=data["name"], check=when["check"], level=when.get("level"), value=when.get("value"),
                   subject=dict(when.get("subject") or {}), expr=data.get("expr"), source=source,
                   for_s=parse_duration(data["for"]) if "for" in data else 0.0,
                   keep_firing_for_s=parse_duration(data["keep_firing_for"]) if "keep_firing_for" in data else 0.0,
                   severity=data.get("severity"), description=data.get("description", ""),
                   labels=dict(data.get("labels") or {}), annotations=dict(data.get("annotations") or {}),
                   notify=list(data.get("notify", [])))


@dataclass
class Waiver:
    check: str
    reason: str
    owner: str
    expires: str
    source: Source
    subject: dict = field(default_factory=dict)
    target: str | None = None

    @classmethod
    def from_dict(cls, data: dict, source: Source) -> Waiver:
        return cls(check=data["check"], reason=data["reason"], owner=data["owner"], expires=str(data["expires"]),
                   source=source, subject=dict(data.get("subject") or {}), target=data.get("target"))


@dataclass
class Catalog:
    """Everything loaded from checks/ and policies/."""

    checks: dict[str, Check] = field(default_factory=dict)
    policies: list[Policy] = field(default_factory=list)
    alerts: list[AlertRule] = field(default_factory=list)
    waivers: list[Waiver] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
