"""The output formats by name, and writing several in one run (`--output FORMAT=PATH`)."""

from __future__ import annotations

import os

from civicq_ops.core.errors import InputError
from civicq_ops.core.fileio import write_atomic

RUN_FORMATS = ("text", "json", "junit", "sarif", "github", "markdown", "prometheus")


def render(result, fmt: str, *, colour: bool = False, verbose: bool = False) -> str:
    from civicq_ops.report import github, json_report, junit, markdown, prometheus, sarif, text

    if fmt == "text":
        return text.render(result, colour=colour, verbose=verbose)
    renderers = {"json": json_report.render, "junit": junit.render, "sarif": sarif.render,
                 "github": github.render, "markdown": markdown.render, "prometheus": prometheus.render}
    if fmt not in renderers:
        raise InputError(f"unknown format '{fmt}' (choose from {', '.join(RUN_FORMATS)})")
    return renderers[fmt](result)


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


def write_outputs(result, outputs: list[tuple[str, str]], stdout_format: str | None = None) -> None:
    """Write the extra formats; with GitHub output anywhere, also append the Markdown step summary."""
    for fmt, path in outputs:
        write_atomic(path, render(result, fmt))
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file and (stdout_format == "github" or any(fmt == "github" for fmt, _ in outputs)):
        from civicq_ops.report import markdown

        with open(summary_file, "a", encoding="utf-8") as f:
            f.write(markdown.render(result))
