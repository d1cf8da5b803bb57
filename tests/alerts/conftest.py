"""Real receivers for alert tests: Alertmanager (Debian's prometheus-alertmanager, on a free port
with its own config and storage, stopped by PID), an HTTP receiver in a thread, and a project file
whose state store and notifiers live in the test's folder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Alertmanager:
    url: str
    process: subprocess.Popen

    def alerts(self, active_only: bool = False) -> list[dict]:
        query = "?active=true&silenced=false&inhibited=false&unprocessed=true" if active_only else ""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts{query}", timeout=5) as r:  # noqa: S310
            return json.load(r)


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    """A real Alertmanager on 127.0.0.1 (scripts/ensure-deps.sh installs it; skipped loudly without)."""
    if ALERTMANAGER is None:
        pytest.skip("prometheus-alertmanager is not installed: run scripts/ensure-deps.sh (as root)")
    config = tmp_path / "alertmanager.yml"
    config.write_text("route: {receiver: sink, group_wait: 1s, group_interval: 1s, repeat_interval: 1h}\n"
                      "receivers: [{name: sink}]\n")
    port = free_port()
    log = open(tmp_path / "alertmanager.log", "wb")  # noqa: SIM115 - closed after the process stops
    proc = subprocess.Popen([ALERTMANAGER, f"--config.file={config}", f"--storage.path={tmp_path / 'am-data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1):  # noqa: S310
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError((tmp_path / "alertmanager.log").read_text()[-2000:]) from None
            time.sleep(0.1)
    try:
        yield Alertmanager(url, proc)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@dataclass
class Receiver:
    """A local HTTP receiver; `mode` makes it answer ok, 500, garbage, slowly, or close the socket."""

    url: str
    requests: list[dict] = field(default_factory=list)
    mode: str = "ok"
    delay_s: float = 0.0

    def bodies(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            rec.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            if rec.delay_s:
                time.sleep(rec.delay_s)
            if rec.mode == "close":
                self.connection.close()
                return
            status, text = {"ok": (200, b'{"ok": true}'), "500": (500, b"internal error"),
                            "garbage": (200, b"\x00\xff not json")}.get(rec.mode, (200, b"ok"))
            if rec.mode == "garbage-status":
                self.wfile.write(b"NOT-HTTP garbage\r\n\r\n")
                return
            self.send_response(status)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def alert_project(tmp_path: Path) -> Callable[..., Path]:
    """A project in tmp_path: the repo's checks, the given alert rules, notifiers and target URL."""

    def write(url: str, notifiers: str = "", alerts: str = "", extra: str = "", state_url: str | None = None) -> Path:
        policies = tmp_path / "policies"
        policies.mkdir(exist_ok=True)
        if alerts:
            (policies / "alerts.yaml").write_text("version: 1\nalerts:\n" + alerts)
        text = (f"version: 1\npaths: {{checks: [{REPO / 'checks'}], policies: [{policies}]}}\n"
                f"targets:\n  db: {{url: \"{url}\", environment: test}}\ndefault_target: db\n"
                f"state: {{url: \"{state_url or 'sqlite:///' + str(tmp_path / 'state.db')}\"}}\n")
        if notifiers:
            text += "notifiers:\n" + notifiers
        path = tmp_path / "civicq-ops.yaml"
        path.write_text(text + extra)
        return path

    return write
