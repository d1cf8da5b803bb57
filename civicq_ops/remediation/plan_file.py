"""The plan file's fields, checked before anything else: a malformed field is exit 2 naming it
(`plan.json: actions[0].limits.retries: 'abc' is not of type 'integer'`), never an unexpected error.
Its JSON Schema is civicq_ops/schemas/plan.schema.json; limits and actions use the same declarations
as policies (policies.schema.json)."""

from __future__ import annotations

from datetime import datetime
from functools import cache

from civicq_ops.catalog.structure import load_schema
from civicq_ops.core.errors import InputError


@cache
def _validator():
    import jsonschema

    # plan.schema.json (`civicq-ops schema plan`) carries the $defs of policies.schema.json, so a
    # plan's limits and actions are declared as in policies; a test keeps the two in step.
    return jsonschema.Draft202012Validator(load_schema("plan"))


def _where(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "plan"


def validate_plan_data(data: dict, where: str) -> None:
    """Raise InputError naming the first malformed field of a plan's JSON."""
    errors = sorted(_validator().iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        err = errors[0]
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            raise InputError(f"{where}: {_where(list(err.absolute_path) + extra[:1])}: not a field of a plan")
        raise InputError(f"{where}: {_where(err.absolute_path)}: {err.message}")
    for key in ("created_at", "expires_at"):
        try:
            moment = datetime.fromisoformat(data[key])
        except ValueError:
            raise InputError(f"{where}: {key}: {data[key]!r} is not an ISO 8601 date and time") from None
        if moment.tzinfo is None:
            raise InputError(f"{where}: {key}: {data[key]!r} has no time zone")
