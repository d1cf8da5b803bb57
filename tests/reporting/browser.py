"""Opening a file in headless Chromium, as the report tests do: the DOM after load (scripts on or
off), a screenshot, and the console messages Chromium logs to stderr."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]


@dataclass
class Page:
    dom: str
    stderr: str

    @property
    def console_errors(self) -> list[str]:
        """Console messages at error level and failed loads, as Chromium logs them with --enable-logging."""
        markers = (":CONSOLE", "Uncaught", "net::ERR_", "Refused to")
        return [line for line in self.stderr.splitlines() if any(m in line for m in markers)
                and "Fontconfig" not in line]


def _run(chromium: str, profile: Path, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args],
                          capture_output=True, text=True, timeout=120)


def png_pixels(png: Path) -> tuple[int, int, bytes]:
    """(width, height, raw RGBA/RGB rows) of an 8-bit, non-interlaced PNG such as Chromium writes:
    enough to compare two screenshots and to tell a drawn page from a blank one, without Pillow."""
    import struct
    import zlib

    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    out = bytearray()
    prev = bytearray(stride)
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += line
        prev = line
    return width, height, bytes(out)


def png_pixels_of(data: bytes) -> tuple[int, int, bytes]:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".png") as f:
        f.write(data)
        f.flush()
        return png_pixels(Path(f.name))


def ink(png: Path) -> float:
    """The share of pixels that are not near-white: 0 for a blank page."""
    width, height, pixels = png_pixels(png)
    channels = len(pixels) // (width * height)
    dark = sum(1 for i in range(0, len(pixels), channels * 7) if min(pixels[i:i + 3]) < 200)
    return dark / (len(pixels) / (channels * 7))


def dump_dom(chromium: str, html: Path, profile: Path) -> Page:
    """The DOM after load. (--dump-dom reads it through a script, so it needs scripts enabled: the
    JavaScript-off view is checked by screenshot instead.)"""
    proc = _run(chromium, profile, ["--dump-dom", html.resolve().as_uri()])
    assert proc.returncode == 0, proc.stderr[-2000:]
    return Page(proc.stdout, proc.stderr)


def screenshot(chromium: str, html: Path, profile: Path, png: Path, size: str = "1280,2400") -> Page:
    """--screenshot from the command line (scripts on: like --dump-dom, it needs them; see visit())."""
    proc = _run(chromium, profile, [f"--screenshot={png}", f"--window-size={size}", "--hide-scrollbars",
                                    html.resolve().as_uri()])
    assert proc.returncode == 0 and png.exists(), proc.stderr[-2000:]
    return Page("", proc.stderr)


@dataclass
class Visit:
    """What a DevTools session saw: the DOM, a screenshot and every console or log message at error level."""

    dom: str
    png: bytes
    errors: list[str]


def _pipe_fds(read_fd: int, write_fd: int) -> None:
    """In the child: the pipes on fds 3 and 4 (copied high first, so neither overwrites the other)."""
    import os

    r, w = os.dup(read_fd), os.dup(write_fd)
    os.dup2(r, 3)
    os.dup2(w, 4)


def visit(chromium: str, html: Path, profile: Path, javascript: bool = True, size: tuple[int, int] = (1280, 2400),
          timeout: float = 60, fragment: str = "") -> Visit:
    """Open a file over the DevTools protocol (--remote-debugging-pipe): with scripts disabled through
    Emulation.setScriptExecutionDisabled, which --dump-dom cannot do (it reads the DOM with a script)."""
    import base64
    import json
    import os
    import select
    import time

    to_chrome_r, to_chrome_w = os.pipe()
    from_chrome_r, from_chrome_w = os.pipe()
    # Chromium reads commands on fd 3 and writes replies on fd 4.
    proc = subprocess.Popen(
        [chromium, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe", f"--window-size={size[0]},{size[1]}",
         "--hide-scrollbars"],
        pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=lambda: _pipe_fds(to_chrome_r, from_chrome_w))
    os.close(to_chrome_r)
    os.close(from_chrome_w)
    buffer = b""
    events: list[dict] = []
    counter = iter(range(1, 10_000))
    deadline = time.monotonic() + timeout

    def read_message() -> dict:
        nonlocal buffer
        while b"\0" not in buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([from_chrome_r], [], [], max(0.0, left))
            assert ready, "chromium did not answer in time"
            chunk = os.read(from_chrome_r, 1 << 20)
            assert chunk, "chromium closed the DevTools pipe"
            buffer += chunk
        message, _, buffer = buffer.partition(b"\0")
        return json.loads(message)

    def call(method: str, params: dict | None = None, session: str | None = None) -> dict:
        ident = next(counter)
        payload = {"id": ident, "method": method, "params": params or {}}
        if session:
            payload["sessionId"] = session
        os.write(to_chrome_w, json.dumps(payload).encode() + b"\0")
        while True:
            message = read_message()
            if message.get("id") == ident:
                assert "error" not in message, (method, message["error"])
                return message.get("result", {})
            events.append(message)

    try:
        target = call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            call(f"{domain}.enable", session=session)
        call("Emulation.setScriptExecutionDisabled", {"value": not javascript}, session=session)
        call("Page.navigate", {"url": html.resolve().as_uri() + (f"#{fragment}" if fragment else "")}, session=session)
        while not any(e.get("method") == "Page.loadEventFired" for e in events):
            events.append(read_message())
        root = call("DOM.getDocument", {"depth": -1}, session=session)["root"]["nodeId"]
        dom = call("DOM.getOuterHTML", {"nodeId": root}, session=session)["outerHTML"]
        png = base64.b64decode(call("Page.captureScreenshot", {"format": "png"}, session=session)["data"])
        errors = []
        for e in events:
            params = e.get("params", {})
            if e.get("method") == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert", "warning"):
                errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
            elif e.get("method") == "Runtime.exceptionThrown":
                errors.append(params.get("exceptionDetails", {}).get("text", "exception"))
            elif e.get("method") == "Log.entryAdded" and params.get("entry", {}).get("level") in ("error", "warning"):
                errors.append(params["entry"].get("text", ""))
        return Visit(dom, png, errors)
    finally:
        os.close(to_chrome_w)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        os.close(from_chrome_r)
