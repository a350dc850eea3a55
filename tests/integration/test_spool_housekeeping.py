"""Spool housekeeping through the real program: files a dead writer left in tmp/ are reported by
`spool list` and `doctor` and removed by `spool clean`; `webhook serve` writes every log line
whole while many clients post at once."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import BASIC_CONFIG

from agentdesk.channels.webhook import spool as spooling

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SECRET = "housekeeping-secret"


def _config(root: Path) -> Path:
    config = root / "config.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{root / "agentdesk.db"}"\n'
        + BASIC_CONFIG
        + f"""
[[spool]]
name = "chat"
path = "{root / "chat"}"
adapter = "generic"
kind = "chat"
secret_command = "echo {SECRET}"
""",
        encoding="utf-8",
    )
    spooling.ensure_spool(root / "chat")
    return config


def _agentdesk(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agentdesk", *args, "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_stale_tmp_files_are_reported_and_cleaned(tmp_path):
    config = _config(tmp_path)
    tmp = tmp_path / "chat" / "tmp"
    two_hours_ago = time.time() - 7200
    for name in ("1700000000.P1Q1.host.json", "1700000001.P1Q2.host.http"):
        (tmp / name).write_bytes(b'{"half": ')
        os.utime(tmp / name, (two_hours_ago, two_hours_ago))
    (tmp / "fresh.json").write_bytes(b"{}")  # a writer at work right now: never touched

    listed = _agentdesk(config, "spool", "list")
    assert listed.returncode == 0, listed.stderr
    assert re.search(
        r"tmp/: 2 file\(s\), 18 bytes, left by a writer that died \(the oldest 2 h old\); "
        r"`agentdesk spool clean chat` removes them",
        listed.stdout,
    ), listed.stdout
    (row,) = json.loads(_agentdesk(config, "spool", "list", "--json").stdout)
    assert sorted(item["file"] for item in row["stale_tmp"]) == [
        "1700000000.P1Q1.host.json",
        "1700000001.P1Q2.host.http",
    ]

    doctor = _agentdesk(config, "doctor")
    (line,) = [line for line in doctor.stdout.splitlines() if "(chat) tmp" in line]
    assert line.startswith("[warn]") and "2 file(s)" in line and "spool clean chat" in line, line

    cleaned = _agentdesk(config, "spool", "clean", "chat")
    assert cleaned.returncode == 0, cleaned.stderr
    assert "removed 2 stale file(s) (18 bytes)" in cleaned.stdout
    assert sorted(os.listdir(tmp)) == ["fresh.json"]
    assert "left by a writer that died" not in _agentdesk(config, "spool", "list").stdout
    assert not [line for line in _agentdesk(config, "doctor").stdout.splitlines() if "(chat) tmp" in line]
    assert _agentdesk(config, "spool", "clean", "nope").returncode != 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# One access line of the receiver: client, the request line, status, size.
ACCESS_LINE = re.compile(r'^127\.0\.0\.1 "POST /hooks/chat HTTP/1\.1" (200|503) -$')


def test_receiver_log_lines_are_whole_under_concurrent_load(tmp_path):
    config = _config(tmp_path)
    port = _free_port()
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "agentdesk", "webhook", "serve", "--port", str(port), "--config", str(config)],
            cwd=REPO,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 15
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        clients, posts = 40, 100
        statuses: list[int] = []

        def client(number: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for i in range(posts):
                body = json.dumps(
                    {"id": f"c{number}-{i}", "sender": {"handle": f"w:{number}"}, "text": "hello"}
                ).encode()
                signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                connection.request(
                    "POST",
                    "/hooks/chat",
                    body=body,
                    headers={"Content-Type": "application/json", "X-Agentdesk-Signature": signature},
                )
                response = connection.getresponse()
                response.read()
                statuses.append(response.status)
            connection.close()

        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert len(statuses) == clients * posts
    finally:
        process.terminate()
        process.wait(10)
    lines = log_path.read_text().splitlines()
    access = [line for line in lines if "/hooks/chat" in line and not line.startswith("agentdesk: POST")]
    broken = [line for line in access if not ACCESS_LINE.match(line)]
    assert broken == [], broken[:5]
    assert len(access) == clients * posts
    assert len(os.listdir(tmp_path / "chat" / "new")) == statuses.count(200)
