"""Helpers of the dashboard tests: the dashboard as a subprocess, Chromium's options, artifacts."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: Debian's chromium (scripts/system-deps.sh --browser installs it); Playwright never downloads one.
CHROMIUM = os.environ.get("AGENTFN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: Where the tests write screenshots (kept out of git).
ARTIFACTS = Path(os.environ.get("AGENTFN_TEST_ARTIFACTS", REPO / "test-artifacts")) / "dashboard"

ENV = {
    name: value
    for name, value in os.environ.items()
    if name not in ("REDIS_URL", "AGENTFN_NAMESPACE")
}


@dataclass
class Server:
    """A running `agentfn dashboard` (or `agentfn metrics`) process and its address."""

    process: subprocess.Popen[str]
    url: str

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_server(command: str, redis_url: str, *options: str, timeout: float = 30.0) -> Server:
    """Run `agentfn <command> --url ... --port 0 <options>`; wait for the line naming its address."""
    process = subprocess.Popen(
        [sys.executable, "-m", "agentfn", command, "--url", redis_url, "--port", "0", *options],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline() if ready else ""
    found = re.search(r"(http://\S+?)/(metrics)?\s", line)
    if not found:
        process.kill()
        raise AssertionError(
            f"agentfn {command} did not start: {line!r} {process.stderr.read() if process.stderr else ''}"
        )
    return Server(process, found.group(1))


def post(url: str, fields: dict[str, str]) -> tuple[int, str]:
    """POST a form without following redirects: (status, Location or body)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    request = urllib.request.Request(
        url, data=urllib.parse.urlencode(fields).encode(), method="POST"
    )
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Location") or error.read().decode()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
