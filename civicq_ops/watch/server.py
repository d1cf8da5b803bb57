"""The HTTP side of `watch`: /metrics, /healthz (the loop is alive) and /readyz (it has finished a
cycle as the active watcher, or stands by). 127.0.0.1 by default; a thread per request."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from civicq_ops.core.errors import ConfigError

DEFAULT_LISTEN = "127.0.0.1:9187"


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"listen address must be HOST:PORT, not {text!r}")
    return host.strip("[]"), int(port)


class MetricsServer:
    def __init__(self, listen: str, registry, health: Callable[[], tuple[bool, str]],
                 ready: Callable[[], tuple[bool, str]]) -> None:
        host, port = parse_listen(listen)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif path in ("/healthz", "/readyz"):
                    ok, text = (health if path == "/healthz" else ready)()
                    self._send(200 if ok else 503, (text + "\n").encode(), "text/plain; charset=utf-8")
                else:
                    self._send(404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain; charset=utf-8")

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        try:
            self.httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as e:
            raise ConfigError(f"cannot listen on {listen}: {e.strerror or e}") from e
        self.httpd.daemon_threads = True
        self.address = f"{host}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        daemon=True, name="watch-http")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
