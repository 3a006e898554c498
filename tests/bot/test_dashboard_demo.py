"""`duban demo` ends with the dashboard's address, and `duban demo --serve` serves the demo's county."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import httpx
from typer.testing import CliRunner

from bot.cli import app


def test_the_demo_ends_by_naming_the_dashboard():
    result = CliRunner().invoke(app, ["demo", "--no-colour"])
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().splitlines()[-1].startswith("📊 督查看板：运行 duban demo --serve")
    assert "http://127.0.0.1:8787/board/" in result.output.splitlines()[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_serve_shows_the_demo_county_after_sign_in():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "demo", "--serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    try:
        url, lines = None, []
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if found := re.search(r"(http://127\.0\.0\.1:\d+/board/signin\?t=[\w-]+)", line):
                url = found[1]
        assert url, "".join(lines)
        with httpx.Client(follow_redirects=False) as client:
            for _ in range(100):  # the server starts just after the line is printed
                try:
                    page = client.get(url)
                    break
                except httpx.ConnectError:
                    time.sleep(0.05)
            assert page.status_code == 200
            token = url.split("t=")[1]
            answer = client.post(f"http://127.0.0.1:{port}/board/signin", data={"t": token})
            assert answer.status_code == 303
            overview = client.get(f"http://127.0.0.1:{port}/board/")  # the client keeps the session cookie
            assert overview.status_code == 200
            units = re.findall(r'data-unit="([^"]+)" data-rank="(\d+)" data-score="(-?\d+)"', overview.text)
            assert ("县住建局", "6", "-13") in units  # the demo's closing 积分: 县住建局 -13分, last of six
    finally:
        proc.terminate()
        proc.wait(timeout=10)
