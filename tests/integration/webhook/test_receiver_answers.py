"""How `webhook serve` answers a kept-alive sender: each answer whole and at once, and never
before the payload it acknowledges is durable, also when posts share the directory's fsync."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import socket
import statistics
import threading
import time
from pathlib import Path

import pytest

from agentdesk import config
from agentdesk.channels.webhook import receiver

pytestmark = pytest.mark.integration
SECRET = "answers-secret"


@pytest.fixture
def served(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(
        f'[[spool]]\nname = "chat"\npath = "{tmp_path / "chat"}"\nadapter = "generic"\nkind = "chat"\n'
        f'secret_command = "echo {SECRET}"\n',
        encoding="utf-8",
    )
    settings = config.load(path)
    server = receiver.make_server(receiver.endpoints_from_settings(settings), host="127.0.0.1", port=0)
    receiver.start_in_thread(server)
    yield server, tmp_path / "chat"
    server.shutdown()
    server.server_close()


def signed_post(i: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"id": f"evt-{i}", "sender": {"handle": f"widget:{i % 7}"}, "text": "x" * 300}).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Agentdesk-Signature": signature}


def test_a_kept_alive_sender_gets_each_answer_whole_in_one_segment_without_a_delayed_ack_wait(served):
    """Written as status line and headers, then body, the body of an answer waited under Nagle for
    the client's delayed ACK of the first part: ~40 ms per post on a kept-alive connection."""
    server, chat = served
    count = 40
    latencies = []
    with socket.create_connection(server.server_address[:2], timeout=10) as client:
        for i in range(count):
            body, headers = signed_post(i)
            request = f"POST /hooks/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
            request += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
            started = time.perf_counter()
            client.sendall(request.encode() + body)
            first = client.recv(65536)  # what the first segment brought, and nothing more
            latencies.append(time.perf_counter() - started)
            head, _, rest = first.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            assert lines[0] == "HTTP/1.1 200 OK", first
            fields = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
            assert "close" not in fields.get("connection", ""), fields
            assert len(rest) == int(fields["content-length"]), f"post {i}: the answer came in pieces: {first!r}"
            assert (chat / "new" / json.loads(rest)["stored"]).read_bytes() == body
    assert len(os.listdir(chat / "new")) == count
    # Each answer waits for two fsyncs and nothing else: far below the 40 ms of a delayed ACK.
    assert statistics.median(latencies) < 0.02, sorted(latencies)


def test_every_acknowledged_post_was_synced_file_then_directory_before_its_answer(served, monkeypatch):
    """Concurrent posts share the fsync of new/: each answer still comes after an fsync of its
    file, its rename, and an fsync of new/ that started after that rename."""
    server, chat = served
    events: list[tuple[str, str, float, float]] = []  # (what, path, started, ended)
    lock = threading.Lock()
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        started = time.monotonic()
        real_fsync(fd)
        with lock:
            events.append(("fsync", path, started, time.monotonic()))

    def rename(source, target) -> None:
        started = time.monotonic()
        real_rename(source, target)
        with lock:
            events.append(("rename", os.fspath(target), started, time.monotonic()))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    connections, per_connection = 16, 8
    answers: list[tuple[str, bytes, float]] = []  # (stored name, body, when the answer was read)
    barrier = threading.Barrier(connections)

    def sender(index: int) -> None:
        connection = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
        barrier.wait()
        for k in range(per_connection):
            body, headers = signed_post(index * 100 + k)
            connection.request("POST", "/hooks/chat", body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            answered = time.monotonic()
            assert response.status == 200, answer
            with lock:
                answers.append((json.loads(answer)["stored"], body, answered))
        connection.close()

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == connections * per_connection
    new = os.path.realpath(chat / "new")
    tmp = os.path.realpath(chat / "tmp")
    directory_syncs = [(started, ended) for what, path, started, ended in events if what == "fsync" and path == new]
    for name, body, answered in answers:
        assert (Path(new) / name).read_bytes() == body
        [file_synced] = [ended for what, path, _, ended in events if what == "fsync" and path == f"{tmp}/{name}"]
        [renamed] = [ended for what, path, _, ended in events if what == "rename" and path == f"{new}/{name}"]
        assert file_synced <= renamed
        assert any(renamed <= started and ended <= answered for started, ended in directory_syncs), name
    assert os.listdir(chat / "tmp") == []


def test_pipelined_posts_with_bare_line_feeds_and_stray_blank_lines_each_get_their_answer(served):
    """The head of a request is taken whole when it has arrived, line by line otherwise: both
    ways end it at its first blank line, whatever the line endings."""
    server, chat = served
    requests = b""
    expected = []
    for i, (newline, before) in enumerate([(b"\r\n", b""), (b"\n", b"\r\n"), (b"\r\n", b"\n\r\n"), (b"\n", b"")]):
        body, headers = signed_post(100 + i)
        lines = [b"POST /hooks/chat HTTP/1.1", b"Host: 127.0.0.1", b"Content-Length: %d" % len(body)]
        lines += [f"{name}: {value}".encode() for name, value in headers.items()]
        requests += before + newline.join(lines) + newline + newline + body
        expected.append(body)
    with socket.create_connection(server.server_address[:2], timeout=10) as client:
        client.sendall(requests)  # all four at once: each head is found in what is already buffered
        stored = []
        answers = client.makefile("rb")  # one reader for all: what it reads ahead stays in it
        for _ in expected:
            status = answers.readline()
            fields = dict(line.decode().split(":", 1) for line in iter(answers.readline, b"\r\n"))
            body = answers.read(int(fields["Content-Length"]))
            assert status.startswith(b"HTTP/1.1 200 "), (status, body)
            stored.append(json.loads(body)["stored"])
    assert [(chat / "new" / name).read_bytes() for name in stored] == expected
