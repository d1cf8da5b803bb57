"""The output formats by name, and writing several in one run (`--output FORMAT=PATH`)."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

from civicq_ops.core.errors import InputError, first_line
from civicq_ops.core.fileio import write_atomic

# Format -> the module that renders it (imported on use: a run imports only its own formats).
_MODULES = {"text": "text", "json": "json_report", "junit": "junit", "sarif": "sarif", "github": "github",
            "markdown": "markdown", "prometheus": "prometheus"}
RUN_FORMATS = tuple(_MODULES)


def render(result, fmt: str, *, colour: bool = False, verbose: bool = False, pretty: bool = False) -> str:
    if fmt not in _MODULES:
        raise InputError(f"unknown format '{fmt}' (choose from {', '.join(RUN_FORMATS)})")
    module = importlib.import_module(f"civicq_ops.report.{_MODULES[fmt]}")
    if fmt == "text":
        return module.render(result, colour=colour, verbose=verbose)
    if fmt == "json":
        return module.render(result, pretty=pretty)
    return module.render(result)


def parse_outputs(specs: list[str], allowed=RUN_FORMATS) -> list[tuple[str, str]]:
    """["json=out.json", "junit=report.xml"] -> [("json", "out.json"), ...]; checked before anything runs."""
    outputs = []
    for spec in specs:
        fmt, sep, path = spec.partition("=")
        if not sep or not path:
            raise InputError(f"--output expects FORMAT=PATH, got '{spec}'")
        if fmt not in allowed:
            raise InputError(f"--output: unknown format '{fmt}' (choose from {', '.join(allowed)})")
        outputs.append((fmt, path))
    return outputs


@dataclass
class OutputFailure:
    """One output that could not be rendered or written; the others are written all the same."""

    name: str
    message: str


def render_safely(result, fmt: str, name: str, failures: list[OutputFailure], **kw) -> str | None:
    """The rendered text, or None with the failure recorded: one broken format never loses the others."""
    try:
        return render(result, fmt, **kw)
    except Exception as e:  # noqa: BLE001 - a renderer bug must not cost the other outputs
        failures.append(OutputFailure(name, f"{type(e).__name__}: {first_line(e)}"))
        return None


def write_outputs(result, outputs: list[tuple[str, str]], stdout_format: str | None = None,
                  pretty: bool = False) -> list[OutputFailure]:
    """Write each extra format on its own (atomically); with GitHub output anywhere, also append the
    Markdown step summary. Returns what failed, after trying everything."""
    failures: list[OutputFailure] = []
    for fmt, path in outputs:
        text = render_safely(result, fmt, f"{fmt}={path}", failures, pretty=pretty)
        if text is None:
            continue
        try:
            write_atomic(path, text)
        except OSError as e:
            failures.append(OutputFailure(f"{fmt}={path}", e.strerror or str(e)))
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file and (stdout_format == "github" or any(fmt == "github" for fmt, _ in outputs)):
        text = render_safely(result, "markdown", f"GITHUB_STEP_SUMMARY={summary_file}", failures)
        try:
            if text is not None:
                with open(summary_file, "a", encoding="utf-8") as f:
                    f.write(text)
        except OSError as e:
            failures.append(OutputFailure(f"GITHUB_STEP_SUMMARY={summary_file}", e.strerror or str(e)))
    return failures
