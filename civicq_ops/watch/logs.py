"""Structured log lines for `watch`: `event key=value ...` or one JSON object per line; redacted."""

from __future__ import annotations

import json
import logging
import sys
import time

from civicq_ops.core.redaction import redact

LOGGER = "civicq_ops.watch"


class _Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {})
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        extra = " ".join(f"{k}={json.dumps(v, default=str) if isinstance(v, str) and ' ' in v else v}"
                         for k, v in fields.items())
        return redact(f"{stamp} {record.levelname.lower()} {record.getMessage()} {extra}".rstrip())


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": round(record.created, 3), "level": record.levelname.lower(), "event": record.getMessage(),
                **getattr(record, "fields", {})}
        return redact(json.dumps(line, default=str, separators=(",", ":")))


def configure(json_lines: bool = False, level: int = logging.INFO, stream=None) -> logging.Logger:
    logger = logging.getLogger(LOGGER)
    logger.handlers.clear()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_Json() if json_lines else _Text())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger


def log(event: str, level: int = logging.INFO, **fields) -> None:
    logging.getLogger(LOGGER).log(level, event, extra={"fields": fields})
