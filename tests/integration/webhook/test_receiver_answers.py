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
import subprocess
import sys
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


def test_every_acknowledged_post_was_flushed_then_renamed_then_its_directory_synced_before_its_answer(
    served, monkeypatch
):
    """Concurrent posts are committed together: each answer still comes after a flush of the
    file's content (its own fsync, or a syncfs of the file system) that began once the file was
    written, then its rename into new/, then an fsync of new/ that began after that rename; and
    the posts shared their flushes."""
    from agentdesk.channels.webhook import commit as committing

    server, chat = served
    events: list[tuple[str, str, float, float]] = []  # (what, path, started, ended)
    lock = threading.Lock()
    real_fsync, real_rename, real_write, real_syncfs = os.fsync, os.rename, os.write, committing.syncfs

    def record(what: str, path: str, started: float) -> None:
        with lock:
            events.append((what, path, started, time.monotonic()))

    def fsync(fd: int) -> None:
        path, started = os.readlink(f"/proc/self/fd/{fd}"), time.monotonic()
        real_fsync(fd)
        record("fsync", path, started)

    def syncfs(fd: int) -> None:
        started = time.monotonic()
        real_syncfs(fd)
        record("syncfs", "", started)

    def write(fd: int, data) -> int:
        path, started = os.readlink(f"/proc/self/fd/{fd}"), time.monotonic()
        written = real_write(fd, data)
        record("write", path, started)
        return written

    def rename(source, target) -> None:
        started = time.monotonic()
        real_rename(source, target)
        record("rename", os.fspath(target), started)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(committing, "syncfs", syncfs)
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
    file_systems = [(started, ended) for what, _, started, ended in events if what == "syncfs"]
    for name, body, answered in answers:
        assert (Path(new) / name).read_bytes() == body
        written = max(ended for what, path, _, ended in events if what == "write" and path == f"{tmp}/{name}")
        [(renamed_started, renamed)] = [
            (started, ended) for what, path, started, ended in events if what == "rename" and path == f"{new}/{name}"
        ]
        flushes = file_systems + [(s, e) for what, path, s, e in events if what == "fsync" and path == f"{tmp}/{name}"]
        assert any(written <= started and ended <= renamed_started for started, ended in flushes), name
        assert any(renamed <= started and ended <= answered for started, ended in directory_syncs), name
    own_fsyncs = sum(what == "fsync" and path.startswith(tmp) for what, path, _, _ in events)
    assert file_systems and own_fsyncs + len(file_systems) < len(answers)  # flushes were shared
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


def raw_post(body: bytes, headers: dict[str, str]) -> bytes:
    request = f"POST /hooks/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
    return (request + "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n").encode() + body


def test_pipelined_posts_get_their_answers_in_order_each_after_the_fsync_of_new_that_covers_it(served, monkeypatch):
    """The committer of new/ sends each 200 after its fsync while the handler already reads the
    next request: answers must still leave in the order of the requests."""
    from agentdesk.channels.webhook import commit as committing

    server, chat = served
    syncs: list[tuple[float, float]] = []

    def slow_fsync_dir(path) -> None:
        started = time.monotonic()
        time.sleep(0.15)
        syncs.append((started, time.monotonic()))

    monkeypatch.setattr(committing, "fsync_dir", slow_fsync_dir)
    posts = [signed_post(200 + i) for i in range(4)]
    forged = (b'{"id": "forged"}', {**posts[0][1], "X-Agentdesk-Signature": "sha256=" + "0" * 64})
    # The forged post's 401 is decided at once, while the 200 before it waits for its fsync.
    sequence = [posts[0], forged, *posts[1:]]
    with socket.create_connection(server.server_address[:2], timeout=10) as client:
        sent = time.monotonic()
        client.sendall(b"".join(raw_post(body, headers) for body, headers in sequence))
        answers = client.makefile("rb")
        statuses, stored = [], []
        for _ in sequence:
            status = answers.readline()
            fields = dict(line.decode().split(":", 1) for line in iter(answers.readline, b"\r\n"))
            statuses.append(int(status.split()[1]))
            answer = json.loads(answers.read(int(fields["Content-Length"])))
            if statuses[-1] == 200:
                stored.append(answer["stored"])
                received = time.monotonic()
                assert any(sent <= started and ended <= received for started, ended in syncs)
    assert statuses == [200, 401, 200, 200, 200]
    assert [(chat / "new" / name).read_bytes() for name in stored] == [body for body, _ in posts]
    assert sorted(stored) == stored  # names carry the time: the answers came in the requests' order


@pytest.mark.parametrize("step", ["contents", "directory"])
def test_when_a_payload_cannot_be_made_durable_the_sender_gets_503_with_retry_after_and_the_connection_goes_on(
    tmp_path, monkeypatch, step
):
    """Whether the flush of the file's content or the fsync of new/ fails."""
    from agentdesk.channels.webhook import commit as committing

    path = tmp_path / "config.toml"
    path.write_text(
        f'[[spool]]\nname = "chat"\npath = "{tmp_path / "chat"}"\nadapter = "generic"\nkind = "chat"\n'
        f'secret_command = "echo {SECRET}"\n',
        encoding="utf-8",
    )
    lines: list[str] = []
    server = receiver.make_server(
        receiver.endpoints_from_settings(config.load(path)), host="127.0.0.1", port=0, log=lines.append
    )
    receiver.start_in_thread(server)
    # The post's content (a lone file: its own fsync) or new/'s fsync fails, once.
    target, name = (os, "fsync") if step == "contents" else (committing, "fsync_dir")
    real_step = getattr(target, name)
    calls: list[object] = []

    def first_fails(argument) -> None:
        calls.append(argument)
        if len(calls) == 1:
            raise OSError(5, "Input/output error")
        real_step(argument)

    monkeypatch.setattr(target, name, first_fails)
    try:
        connection = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
        body, headers = signed_post(300)
        connection.request("POST", "/hooks/chat", body=body, headers=headers)
        response = connection.getresponse()
        assert response.status == 503 and response.getheader("Retry-After") == "30"
        assert json.loads(response.read()) == {"error": "cannot store the payload: Input/output error"}
        if step == "contents":  # refused before its rename: nothing of it is left
            assert os.listdir(tmp_path / "chat" / "new") == os.listdir(tmp_path / "chat" / "tmp") == []
        body, headers = signed_post(301)  # the same connection: the next post is stored and acknowledged
        connection.request("POST", "/hooks/chat", body=body, headers=headers)
        response = connection.getresponse()
        assert response.status == 200
        assert (tmp_path / "chat" / "new" / json.loads(response.read())["stored"]).read_bytes() == body
        connection.close()
    finally:
        server.shutdown()
        server.server_close()
    assert any("answered 503 instead of 200: the payload was not stored: Input/output error" in line for line in lines)


KILLED_RECEIVER = """
import sys, time
from pathlib import Path
from agentdesk import config
from agentdesk.channels.webhook import commit, receiver

def never_returns(*arguments):
    print("syncing", flush=True)
    time.sleep(3600)

# The power goes before this step ends: the flush of the contents, or the fsync of new/.
if sys.argv[2] == "contents":
    commit.DirectoryCommitter._flush = never_returns
else:
    commit.fsync_dir = never_returns
server = receiver.make_server(receiver.endpoints_from_settings(config.load(Path(sys.argv[1]))), host="127.0.0.1", port=0)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@pytest.mark.parametrize("step", ["contents", "directory"])
def test_a_receiver_killed_before_its_payloads_are_durable_acknowledged_nothing_and_left_only_whole_files(
    tmp_path, step
):
    """A payload's content is flushed before its rename into new/, and its 200 waits for the
    fsync of new/ after that: killed during either, the receiver has answered nothing, and what
    new/ holds is whole (nothing at all while the contents were being flushed)."""
    path = tmp_path / "config.toml"
    path.write_text(
        f'[[spool]]\nname = "chat"\npath = "{tmp_path / "chat"}"\nadapter = "generic"\nkind = "chat"\n'
        f'secret_command = "echo {SECRET}"\n',
        encoding="utf-8",
    )
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_RECEIVER, str(path), step],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        port = int(child.stdout.readline())
        posts = [signed_post(400 + i) for i in range(6)]
        clients = []
        for body, headers in posts:
            client = socket.create_connection(("127.0.0.1", port), timeout=10)
            client.sendall(raw_post(body, headers))
            clients.append(client)
        assert child.stdout.readline().strip() == "syncing"
        new, tmp = tmp_path / "chat" / "new", tmp_path / "chat" / "tmp"
        deadline = time.monotonic() + 10
        while len(os.listdir(new)) + len(os.listdir(tmp)) < len(posts) and time.monotonic() < deadline:
            time.sleep(0.02)
        for client in clients:  # written, and still no answer: not durable yet
            client.settimeout(0.3)
            with pytest.raises(TimeoutError):
                client.recv(100)
    finally:
        child.kill()
        child.wait(10)
    for client in clients:
        client.settimeout(5)
        assert client.recv(100) == b""  # the connection ended without a 200
        client.close()
    visible = [path.read_bytes() for path in new.iterdir()]
    waiting = [path.read_bytes() for path in tmp.iterdir()]  # never acknowledged; `spool clean` removes them
    assert sorted(visible + waiting) == sorted(body for body, _ in posts)  # each whole, in one place
    if step == "contents":
        assert visible == []  # nothing in new/ before its content is on the disk
    else:
        assert visible  # renamed once flushed; their 200 waited for new/


def test_pipelined_posts_to_two_spools_get_their_answers_in_the_order_of_the_requests(tmp_path, monkeypatch):
    """Each spool has its own committer: the second post's 200 may be ready first, and must still
    wait for the first's, or the sender pairs each answer with the wrong post."""
    from agentdesk.channels.webhook import commit as committing

    path = tmp_path / "config.toml"
    path.write_text(
        "".join(
            f'[[spool]]\nname = "{name}"\npath = "{tmp_path / name}"\nadapter = "generic"\nkind = "chat"\n'
            f'secret_command = "echo {SECRET}"\n\n'
            for name in ("slow", "quick")
        ),
        encoding="utf-8",
    )
    server = receiver.make_server(receiver.endpoints_from_settings(config.load(path)), host="127.0.0.1", port=0)
    receiver.start_in_thread(server)
    real = committing.fsync_dir

    def fsync_dir(directory) -> None:
        if os.path.basename(os.path.dirname(directory)) == "slow":
            time.sleep(0.3)
        real(directory)

    monkeypatch.setattr(committing, "fsync_dir", fsync_dir)
    posts = [signed_post(500), signed_post(501)]
    try:
        with socket.create_connection(server.server_address[:2], timeout=10) as client:
            request = raw_post(*posts[0]).replace(b"/hooks/chat", b"/hooks/slow", 1)
            request += raw_post(*posts[1]).replace(b"/hooks/chat", b"/hooks/quick", 1)
            client.sendall(request)
            answers = client.makefile("rb")
            stored = []
            for _ in posts:
                assert answers.readline().startswith(b"HTTP/1.1 200 ")
                fields = dict(line.decode().split(":", 1) for line in iter(answers.readline, b"\r\n"))
                stored.append(json.loads(answers.read(int(fields["Content-Length"])))["stored"])
    finally:
        server.shutdown()
        server.server_close()
    assert (tmp_path / "slow" / "new" / stored[0]).read_bytes() == posts[0][0]
    assert (tmp_path / "quick" / "new" / stored[1]).read_bytes() == posts[1][0]
