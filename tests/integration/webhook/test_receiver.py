"""`webhook serve` over real HTTP on loopback, writing real spool files, ingested into real SQLite."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from conftest import BASIC_CONFIG, FIXED_NOW
from sqlmodel import func, select

from agentdesk import config
from agentdesk.channels.webhook import receiver
from agentdesk.channels.webhook import spool as spooling
from agentdesk.domain import clocks, replies
from agentdesk.store import db
from agentdesk.store.models import Conversation, Message, Outbox
from agentdesk.sync import delivery
from agentdesk.sync.senders import SpoolSender
from agentdesk.sync.sources import spool as spool_source

pytestmark = pytest.mark.integration
SECRET = "s3cret-for-tests"
TWILIO_TOKEN = "twilio-auth-token"
DATA = Path(__file__).resolve().parents[2] / "data" / "webhooks"


def make_config(root: Path, outbound_url: str = "") -> Path:
    path = root / "config.toml"
    extra = f'outbound = {{ url = "{outbound_url}" }}\n' if outbound_url else ""
    path.write_text(
        f'[database]\nurl = "sqlite:///{root / "agentdesk.db"}"\n'
        + BASIC_CONFIG
        + f"""
[[spool]]
name = "chat"
path = "{root / "chat"}"
adapter = "generic"
kind = "chat"
secret_command = "echo {SECRET}"
max_bytes = 65536
{extra}
[[spool]]
name = "sms"
path = "{root / "sms"}"
adapter = "twilio_sms"
kind = "sms"
secret_command = "echo {TWILIO_TOKEN}"

[[spool]]
name = "open"
path = "{root / "open"}"
adapter = "generic"
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def served(tmp_path):
    settings = config.load(make_config(tmp_path))
    server = receiver.make_server(receiver.endpoints_from_settings(settings), host="127.0.0.1", port=0)
    receiver.start_in_thread(server)
    yield settings, server
    server.shutdown()
    server.server_close()


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(server, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def chat_event(i: int) -> bytes:
    return json.dumps(
        {
            "id": f"evt-{i}",
            "sender": {"name": f"Visitor {i}", "handle": f"widget:{i % 17}"},
            "conversation": {"thread_key": f"widget-thread-{i % 17}"},
            "text": f"message number {i}",
            "timestamp": "2026-11-24T09:00:00Z",
        }
    ).encode()


def files(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_file())


def test_200_concurrent_posts_lose_and_double_nothing(served):
    settings, server = served
    count = 200
    barrier = threading.Barrier(count)
    statuses: dict[int, int] = {}

    def client(i: int) -> None:
        body = chat_event(i)
        barrier.wait()
        status, _ = post(
            server, "/hooks/chat", body, {"Content-Type": "application/json", "X-Agentdesk-Signature": sign(body)}
        )
        statuses[i] = status

    threads = [threading.Thread(target=client, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(statuses) == list(range(count)) and set(statuses.values()) == {200}
    spool_dir = settings.spool_path(settings.spool[0])
    written = files(spool_dir / "new")
    assert len(written) == count and os.listdir(spool_dir / "tmp") == []
    assert sorted(json.loads(p.read_bytes())["id"] for p in written) == sorted(f"evt-{i}" for i in range(count))

    engine = db.open_database(settings.database_url)
    source = spool_source.SpoolSource(
        settings.spool[0], engine=engine, policies=clocks.Policies.from_settings(settings), path=spool_dir
    )
    result = source.poll()
    assert (result.stored, result.files, result.rejected) == (count, count, [])
    assert source.poll().files == 0
    with db.read_session(engine) as session:
        ids = session.exec(select(Message.external_id)).all()
        assert sorted(ids) == sorted(f"evt-{i}" for i in range(count))
        assert session.exec(select(func.count()).select_from(Conversation)).one() == 17
    engine.dispose()


def test_authentication_size_and_routing(served):
    settings, server = served
    body = chat_event(1)
    json_type = {"Content-Type": "application/json"}
    assert post(server, "/hooks/chat", body, json_type)[0] == 401  # no signature
    assert post(server, "/hooks/chat", body, {**json_type, "X-Agentdesk-Signature": sign(body, "wrong")})[0] == 401
    assert post(server, "/hooks/chat", body + b" ", {**json_type, "X-Agentdesk-Signature": sign(body)})[0] == 401
    assert post(server, "/hooks/open", body, {**json_type, "X-Agentdesk-Signature": sign(body)})[0] == 401  # no secret
    big = b"x" * 65537
    assert post(server, "/hooks/chat", big, {**json_type, "X-Agentdesk-Signature": sign(big)})[0] == 413
    assert post(server, "/hooks/nope", body, {**json_type, "X-Agentdesk-Signature": sign(body)})[0] == 404
    chat_dir = settings.spool_path(settings.spool[0])
    assert files(chat_dir / "new") == []  # nothing unauthenticated was written
    status, answer = post(server, "/hooks/chat", body, {**json_type, "X-Agentdesk-Signature": sign(body)})
    assert status == 200 and (chat_dir / "new" / json.loads(answer)["stored"]).read_bytes() == body
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=5)
    connection.request("GET", "/healthz")
    assert connection.getresponse().status == 200


def test_twilio_signature_and_form_bodies_become_http_files(served):
    settings, server = served
    body = (DATA / "twilio" / "inbound_sms.form").read_bytes()
    host, port = server.server_address[:2]
    public = "https://hooks.example.com/hooks/sms"  # what Twilio called, through the reverse proxy
    params = {}
    from urllib.parse import parse_qs

    params = parse_qs(body.decode(), keep_blank_values=True)
    data = public + "".join(k + v for k in sorted(params) for v in sorted(set(params[k])))
    signature = base64.b64encode(hmac.new(TWILIO_TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature,
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "hooks.example.com",
    }
    status, answer = post(server, "/hooks/sms", body, headers)
    assert status == 200 and b"<Response>" in answer
    assert post(server, "/hooks/sms", body + b"&Body=forged", headers)[0] == 401
    written = files(settings.spool_path(settings.spool[1]) / "new")
    assert len(written) == 1 and written[0].suffix == ".http"
    assert written[0].read_bytes() == b"Content-Type: application/x-www-form-urlencoded\r\n\r\n" + body


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_cli_serve_then_a_watching_sync_stores_within_two_seconds(tmp_path):
    config_path = make_config(tmp_path)
    port = _free_port()
    code = (
        "import argparse, sys; from pathlib import Path; from agentdesk.cli.webhook import cmd_webhook_serve; "
        f"sys.exit(cmd_webhook_serve(argparse.Namespace(config=Path({str(config_path)!r}), host='127.0.0.1', "
        f"port={port}, public_url='', quiet=True)))"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    try:
        banner = process.stderr.readline()
        assert f"http://127.0.0.1:{port}/hooks/chat" in banner, banner
        settings = config.load(config_path)
        engine = db.open_database(settings.database_url)
        source = spool_source.SpoolSource(
            settings.spool[0],
            engine=engine,
            policies=clocks.Policies.from_settings(settings),
            path=settings.spool_path(settings.spool[0]),
        )
        seen: list[float] = []

        def watch():  # what `agentdesk sync` does for a spool between passes
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not seen:
                if source.wait(timeout=1.0) and source.poll().stored:
                    seen.append(time.monotonic())

        watcher = threading.Thread(target=watch)
        watcher.start()
        time.sleep(0.3)
        body = chat_event(7)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request(
            "POST",
            "/hooks/chat",
            body=body,
            headers={"Content-Type": "application/json", "X-Agentdesk-Signature": sign(body)},
        )
        assert connection.getresponse().status == 200
        acknowledged = time.monotonic()
        watcher.join(15)
        assert seen and seen[0] - acknowledged < 2.0
        engine.dispose()
    finally:
        process.terminate()
        process.wait(10)


class _Gateway(BaseHTTPRequestHandler):
    answers: list[int] = []
    received: list[tuple[dict, bytes]] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        status = type(self).answers.pop(0) if type(self).answers else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_outbound_url_is_signed_retried_and_recorded(tmp_path):
    gateway = HTTPServer(("127.0.0.1", 0), _Gateway)
    threading.Thread(target=gateway.serve_forever, daemon=True).start()
    _Gateway.answers, _Gateway.received = [503], []
    try:
        settings = config.load(make_config(tmp_path, f"http://127.0.0.1:{gateway.server_address[1]}/replies"))
        engine = db.open_database(settings.database_url)
        policies = clocks.Policies.from_settings(settings)
        chat = settings.spool[0]
        path = settings.spool_path(chat)
        spooling.ensure_spool(path)
        spooling.write_payload(path, chat_event(3), "application/json")
        spool_source.SpoolSource(chat, engine=engine, policies=policies, path=path).poll()
        with db.write_session(engine) as session:
            conversation = session.exec(select(Conversation)).one()
            replies.reply(
                session,
                conversation=conversation,
                body="Thanks, looking into it.",
                agent="tester",
                agent_name="Terry",
                now=FIXED_NOW,
                policies=policies,
            )
            session.commit()
        senders = {"chat": SpoolSender(settings)}  # signs with the spool's secret_command
        first = delivery.deliver_due(engine, senders, now_fn=lambda: FIXED_NOW)
        assert first.retrying == 1 and "HTTP 503" in first.errors[0]
        later = FIXED_NOW + delivery.backoff_after(1)
        assert delivery.deliver_due(engine, senders, now_fn=lambda: later).sent == 1
        headers, body = _Gateway.received[-1]
        assert headers["X-Agentdesk-Signature"] == sign(body)
        document = json.loads(body)
        assert document["recipient"] == {"handle": "widget:3", "name": "Visitor 3"}
        assert headers["X-Agentdesk-Event-Id"] == document["id"]
        with db.read_session(engine) as session:
            row = session.exec(select(Outbox)).one()
            assert (row.state, row.attempts, row.last_error) == ("sent", 2, "")
        # a permanent refusal fails at once, with the reason on the row
        _Gateway.answers = [400]
        with db.write_session(engine) as session:
            conversation = session.exec(select(Conversation)).one()
            replies.reply(
                session,
                conversation=conversation,
                body="One more thing",
                agent="tester",
                agent_name="Terry",
                now=later,
                policies=policies,
            )
            session.commit()
        assert delivery.deliver_due(engine, senders, now_fn=lambda: later).failed == 1
        with db.read_session(engine) as session:
            failed = session.exec(select(Outbox).where(Outbox.state == "failed")).one()
            assert "HTTP 400" in failed.last_error
        engine.dispose()
    finally:
        gateway.shutdown()
        gateway.server_close()
