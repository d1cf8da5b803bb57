"""Thresholds: conditions on a finding's value, per level; the most severe match wins."""

from __future__ import annotations

from dataclasses import dataclass

from civicq_ops.core.units import parse_quantity

LEVELS = ("warning", "critical")
SEVERITY = {"ok": 0, "skipped": 0, "warning": 1, "critical": 2, "error": 3}
Reference = float | tuple[float, float]  # what a comparison compares with: a number, or (low, high)


@dataclass(frozen=True)
class Condition:
    """All of its comparisons must hold: {gt: 0.1} or {gte: 10, lt: 20}."""

    ops: tuple[tuple[str, Reference], ...]

    @classmethod
    def parse(cls, spec: dict, unit: str | None) -> Condition:
        ops: list[tuple[str, Reference]] = []
        for op, raw in spec.items():
            if op in ("between", "outside"):
                lo, hi = (parse_quantity(v, unit) for v in raw)
                ops.append((op, (min(lo, hi), max(lo, hi))))
            else:
                ops.append((op, parse_quantity(raw, unit)))
        return cls(tuple(ops))

    def matches(self, value: float) -> bool:
        return all(_compare(op, value, ref) for op, ref in self.ops)

    def interval(self) -> tuple[float, float, bool, bool]:
        """The values this condition matches as (low, high, low_open, high_open); `ne` is ignored."""
        lo, hi, lo_open, hi_open = float("-inf"), float("inf"), True, True
        for op, ref in self.ops:
            if isinstance(ref, tuple):  # between / outside
                if op == "between":
                    lo, hi, lo_open, hi_open = ref[0], ref[1], False, False
                continue
            if op == "gt" and ref >= lo:
                lo, lo_open = ref, True
            elif op == "gte" and ref > lo:
                lo, lo_open = ref, False
            elif op == "lt" and ref <= hi:
                hi, hi_open = ref, True
            elif op == "lte" and ref < hi:
                hi, hi_open = ref, False
            elif op == "eq":
                lo = hi = ref
                lo_open = hi_open = False
        return lo, hi, lo_open, hi_open


def _compare(op: str, value: float, ref) -> bool:
    if op == "gt":
        return value > ref
    if op == "gte":
        return value >= ref
    if op == "lt":
        return value < ref
    if op == "lte":
        return value <= ref
    if op == "eq":
        return value == ref
    if op == "ne":
        return value != ref
    if op == "between":
        return ref[0] <= value <= ref[1]
    return value < ref[0] or value > ref[1]  # outside


@dataclass(frozen=True)
class Thresholds:
    levels: dict[str, Condition]
    raw: dict

    @classmethod
    def parse(cls, spec: dict | None, unit: str | None) -> Thresholds | None:
        if not spec:
            return None
        return cls({lvl: Condition.parse(spec[lvl], unit) for lvl in LEVELS if lvl in spec}, spec)

    def level_for(self, value: float) -> str:
        for level in reversed(LEVELS):  # critical first
            cond = self.levels.get(level)
            if cond is not None and cond.matches(value):
                return level
        return "ok"

    def critical_inside_warning(self) -> bool:
        """A critical zone outside the warning zone means the levels were swapped by mistake."""
        w, c = self.levels.get("warning"), self.levels.get("critical")
        if w is None or c is None:
            return True
        if any(op in ("outside", "ne") for op, _ in w.ops + c.ops):
            return True  # not representable as one interval; do not guess
        wl, wh, wlo, who = w.interval()
        cl, ch, clo, cho = c.interval()
        low_ok = cl > wl or (cl == wl and (clo or not wlo))
        high_ok = ch < wh or (ch == wh and (cho or not who))
        return low_ok and high_ok
