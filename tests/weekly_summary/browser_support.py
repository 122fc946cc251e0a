"""A tiny W3C WebDriver client (urllib only, no selenium) over Debian's chromedriver and headless Chromium, and a
local HTTP server for the artifact folder, so pages are read the way people read them: loaded over HTTP, links
followed, at a laptop's and a phone's width.

The checks run in the page (``execute/sync``): console errors (``goog:loggingPrefs`` browser log), drawn chart
bars (non-zero bounding boxes), no horizontal overflow (``scrollWidth <= innerWidth``), a long name wrapping
(more than one line box), and every ``<a href>`` (same-page anchors must name an element; others must answer).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAPTOP, PHONE = (1366, 768), (390, 844)


def available() -> str | None:
    """None when chromedriver and chromium are installed, else why not (the skip reason)."""
    for what, path in (("chromedriver", CHROMEDRIVER), ("chromium", CHROMIUM)):
        if not Path(path).exists():
            return f"{what} is not installed (apt-get install chromium chromium-driver): browser tests need it"
    return None


class WebDriverError(RuntimeError):
    pass


class ChromeDriver:
    """chromedriver on a port it picks itself (``--port=0``), read from its start-up line."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([CHROMEDRIVER, "--port=0"], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)  # fmt: skip
        deadline = time.monotonic() + 30
        seen = ""
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            seen += line
            found = re.search(r"started successfully on port (\d+)", line)
            if found:
                self.url = f"http://127.0.0.1:{found.group(1)}"
                threading.Thread(target=self._drain, daemon=True).start()
                return
            if not line and self.process.poll() is not None:
                break
        self.stop()
        raise WebDriverError(f"chromedriver did not start: {seen!r}")

    def _drain(self) -> None:
        for _ in self.process.stdout:
            pass

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)

    def call(self, method: str, path: str, body: dict | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,  # noqa: S310 - local driver
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - local chromedriver
                return json.loads(response.read() or b"{}").get("value")
        except urllib.error.HTTPError as exc:
            raise WebDriverError(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from None

    def session(self, size: tuple[int, int]) -> Session:
        width, height = size
        options: dict[str, Any] = {"binary": CHROMIUM, "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
            f"--window-size={width},{height}"]}  # fmt: skip
        if width < 600:  # a phone: its viewport, its pixel ratio, the page's viewport meta honoured
            options["mobileEmulation"] = {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 3}}
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options,
                                                 "goog:loggingPrefs": {"browser": "ALL"}}}}  # fmt: skip
        value = self.call("POST", "/session", caps)
        return Session(self, value["sessionId"])


class Session:
    def __init__(self, driver: ChromeDriver, session_id: str) -> None:
        self.driver, self.id = driver, session_id

    def open(self, url: str) -> None:
        self.driver.call("POST", f"/session/{self.id}/url", {"url": url})

    def run(self, script: str, *args: Any) -> Any:
        return self.driver.call("POST", f"/session/{self.id}/execute/sync", {"script": script, "args": list(args)})

    def console(self) -> list[dict[str, Any]]:
        return self.driver.call("POST", f"/session/{self.id}/se/log", {"type": "browser"}) or []

    def close(self) -> None:
        with contextlib.suppress(WebDriverError):
            self.driver.call("DELETE", f"/session/{self.id}")


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class FolderServer:
    """The artifact folder over HTTP on 127.0.0.1, port 0 (the OS picks)."""

    def __init__(self, root: Path) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


PAGE_FACTS = """
const name = arguments[0];
const bars = [...document.querySelectorAll('svg.chart rect')].map(r => r.getBBox())
  .filter(b => b.width > 0 && b.height > 0);
const charts = [...document.querySelectorAll('svg.chart')].map(s => s.getBoundingClientRect())
  .map(r => [r.width, r.height]);
const named = [...document.querySelectorAll('body *')]
  .filter(e => e.children.length === 0 && e.textContent.trim() === name);
const lines = named.map(e => { const r = document.createRange(); r.selectNodeContents(e);
  const tops = new Set([...r.getClientRects()].map(x => Math.round(x.top))); return {tag: e.tagName, lines: tops.size,
  height: e.getBoundingClientRect().height, width: e.getBoundingClientRect().width}; });
const links = [...document.querySelectorAll('a[href]')].map(a => ({href: a.href, raw: a.getAttribute('href')}));
const anchors = links.filter(l => l.raw.startsWith('#')).map(l => [l.raw, !!document.getElementById(l.raw.slice(1))]);
return {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth, bars: bars.length,
        charts: charts, named: lines, links: links, anchors: anchors, title: document.title};
"""


def page_facts(session: Session, url: str, long_name: str) -> dict[str, Any]:
    session.open(url)
    facts = session.run(PAGE_FACTS, long_name)
    facts["console"] = [e for e in session.console() if e.get("level") == "SEVERE"]
    return facts


def link_answers(href: str) -> bool:
    """A file:// link's file exists; an http(s) link answers 200 to a GET."""
    if href.startswith("file://"):
        return Path(urllib.request.url2pathname(href[len("file://"):].split("#")[0])).exists()
    with contextlib.suppress(urllib.error.URLError, OSError), urllib.request.urlopen(  # noqa: S310 - local server
        href.split("#")[0], timeout=10
    ) as response:
        return response.status == 200
    return False
