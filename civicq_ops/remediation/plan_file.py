"""The plan file's fields, checked before anything else: a malformed field is exit 2 naming it
(`plan.json: actions[0].limits.retries: 'abc' is not of type 'integer'`), never an unexpected error.
Limits and actions use the same declarations as policies (policies.schema.json)."""

from __future__ import annotations

from datetime import datetime
from functools import cache

from civicq_ops.catalog.structure import load_schema
from civicq_ops.core.errors import InputError


@cache
def _validator():
    import jsonschema

    defs = load_schema("policies")["$defs"]
    action_enum = defs["policy"]["properties"]["action"]["enum"]
    string = {"type": "string"}
    step = {
        "type": "object",
        "required": ["step", "policy", "action", "mode", "object", "object_name", "sql", "lock", "in_transaction",
                     "options", "limits", "finding"],
        "additionalProperties": False,
        "properties": {
            "step": {"type": "integer", "minimum": 1},
            "policy": string,
            "action": {"enum": action_enum},
            "mode": {"enum": ["plan", "enforce"]},
            "object": {"type": "object", "additionalProperties": False, "properties": {
                "schema": string, "name": string, "database": string, "pid": {"type": "integer"}}},
            "object_name": string,
            "sql": {"type": "array", "items": string},
            "lock": string,
            "in_transaction": {"type": "boolean"},
            "options": {"type": "object"},
            "limits": {"$ref": "#/$defs/limits"},
            "finding": {"type": "object", "required": ["check"], "properties": {"check": string, "id": string}},
            "note": string,
        },
    }
    blocked = {"type": "object", "required": ["policy", "action", "object_name", "reason", "finding"],
               "additionalProperties": False,
               "properties": {"policy": string, "action": string, "object_name": string, "reason": string,
                              "finding": {"type": "object"}}}
    schema = {
        "type": "object",
        "required": ["id", "created_at", "expires_at", "target", "config_digest", "actions", "format_version"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9a-f]{6,64}$"},
            "created_at": string, "expires_at": string,
            "target": {"type": "object", "required": ["name", "system_identifier", "database"],
                       "properties": {"name": string, "system_identifier": string, "database": string,
                                      "server_version": string}},
            "config_digest": string,
            "actions": {"type": "array", "items": step},
            "blocked": {"type": "array", "items": blocked},
            "errors": {"type": "array", "items": {"type": "object"}},
            "format_version": string,
            "signature": string,
        },
        "$defs": defs,
    }
    return jsonschema.Draft202012Validator(schema)


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
