"""
A real browser against a real demo node: Debian's chromium driven by Playwright.

The node runs as `twistd -n heihei --demo` in its own process (the browser calls block, so the
node cannot share the test's reactor). The browser is the system's `/usr/bin/chromium`, which
`tests/peers/debian-packages.sh` installs (tox runs it first); Playwright's own browser downloads
(`playwright install`) are never used. Screenshots are taken on every run; they replace the
committed ones in docs/screenshots/ when HEIHEI_SCREENSHOTS=docs is set (`HEIHEI_SCREENSHOTS=docs
tox -- tests/browser`), else they go to the test's temporary directory, so a test run leaves the
tree clean.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile

import pytest
from playwright.sync_api import sync_playwright

from heihei.store.embedded import free_loopback_port
from tests.test_twistd import ROOT, TWISTD, wait_healthy

CHROMIUM = "/usr/bin/chromium"
DOCS_SCREENSHOTS = os.path.join(ROOT, "docs", "screenshots")
SCREENSHOTS = DOCS_SCREENSHOTS if os.environ.get("HEIHEI_SCREENSHOTS") == "docs" else \
    os.path.join(tempfile.gettempdir(), f"heihei-screenshots-{os.getpid()}")
#: every wait for the page to show something
PAGE_TIMEOUT_MS = 10_000


class DemoNode:
    def __init__(self, tmp) -> None:
        self.ports = {name: free_loopback_port() for name in ("http", "live", "boss", "jim")}
        self.data_dir = os.path.join(tmp, "data")
        args = [part for name, port in self.ports.items() for part in (f"--{name}", f"tcp:{port}")]
        self.proc = subprocess.Popen([TWISTD, "-n", "--pidfile=", "heihei", "--demo", *args,
                                      "--data-dir", self.data_dir], cwd=tmp, env=dict(os.environ, PYTHONPATH=ROOT),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait_healthy(self.ports["http"], self.proc)

    def url(self, path: str, listener: str = "http") -> str:
        return f"http://127.0.0.1:{self.ports[listener]}{path}"

    @property
    def admin_token(self) -> str:
        with open(os.path.join(self.data_dir, "admin-token")) as f:
            return f.read().strip()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    node = DemoNode(str(tmp_path_factory.mktemp("demo")))
    yield node
    node.stop()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run tests/peers/debian-packages.sh (it installs Debian's chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"] if os.geteuid() == 0
                                             else [])
        yield browser
        browser.close()


@pytest.fixture
def two(browser):
    """Two separate browser contexts: two people with their own storage and connections."""
    contexts = [browser.new_context(viewport={"width": 1200, "height": 760}, locale="zh-CN") for _ in range(2)]
    pages = [context.new_page() for context in contexts]
    for page in pages:
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        page.on("pageerror", lambda error: sys.stderr.write(f"page error: {error}\n"))
    yield pages
    for context in contexts:
        context.close()


def screenshot(page, name: str, *, full_page: bool = False) -> None:
    os.makedirs(SCREENSHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SCREENSHOTS, f"{name}.png"), full_page=full_page)
