"""`webhook serve` against the internet: a real receiver on a loopback port, real sockets that
stall mid-header and mid-body, idle by the hundred, vanish, lie about lengths, chunk, and send
bytes no header should hold. What a user sees: the right status, nothing half-written, the
receiver still answering a normal post quickly, memory bounded, one escaped line per event.
"""

from __future__ import annotations

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
from pathlib import Path

import pytest

from agentdesk import config
from agentdesk.channels.webhook import receiver

SECRET = "hostile-secret"
TWILIO_TOKEN = "twilio-token"
HEADER_TIMEOUT, BODY_TIMEOUT, MAX_CONNECTIONS = 1.0, 1.5, 40


def write_config(root: Path, *, max_bytes: int = 5 * 1024 * 1024) -> Path:
    path = root / "config.toml"
    path.write_text(
        f"""
[database]
url = "sqlite:///{root / "agentdesk.db"}"

[webhook]
header_timeout = {HEADER_TIMEOUT}
body_timeout = {BODY_TIMEOUT}
max_connections = {MAX_CONNECTIONS}

[[spool]]
name = "chat"
path = "{root / "chat"}"
adapter = "generic"
kind = "chat"
secret_command = "echo {SECRET}"
max_bytes = {max_bytes}

[[spool]]
name = "small"
path = "{root / "small"}"
adapter = "generic"
kind = "chat"
secret_command = "echo {SECRET}"
max_bytes = 1000

[[spool]]
name = "sms"
path = "{root / "sms"}"
adapter = "twilio_sms"
kind = "sms"
secret_command = "echo {TWILIO_TOKEN}"
""",
        encoding="utf-8",
    )
    return path


class Served:
    def __init__(self, root: Path):
        self.settings = config.load(write_config(root))
        self.lines: list[str] = []
        self.server = receiver.make_server(
            receiver.endpoints_from_settings(self.settings), host="127.0.0.1", port=0, log=self.lines.append
        )
        receiver.start_in_thread(self.server)
        self.port = self.server.server_address[1]
        self.chat = root / "chat"

    def files(self, sub: str, spool: str = "chat") -> list[str]:
        return os.listdir(self.chat.parent / spool / sub)


@pytest.fixture
def served(tmp_path):
    served = Served(tmp_path)
    yield served
    served.server.shutdown()
    served.server.server_close()


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def event(i: int = 1) -> bytes:
    return json.dumps({"id": f"evt-{i}", "sender": {"handle": f"widget:{i}"}, "text": "hello"}).encode()


def connect(port: int) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    return client


def read_response(client: socket.socket) -> tuple[int, dict[str, str], bytes]:
    response = http.client.HTTPResponse(client)
    response.begin()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def raw(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    with connect(port) as client:
        client.sendall(data)
        return read_response(client)


def post_head(path: str, headers: dict[str, str | bytes]) -> bytes:
    lines = [f"POST {path} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
    for name, value in headers.items():
        lines.append(name.encode() + b": " + (value if isinstance(value, bytes) else value.encode("latin-1")))
    return b"\r\n".join(lines) + b"\r\n\r\n"


def normal_post(port: int, i: int = 1) -> tuple[int, float]:
    body = event(i)
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(
            "POST",
            "/hooks/chat",
            body=body,
            headers={"Content-Type": "application/json", "X-Agentdesk-Signature": sign(body)},
        )
        response = connection.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    finally:
        connection.close()


def wait_until(condition, seconds: float) -> bool:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def assert_log_is_inert(lines: list[str]) -> None:
    assert all(line.isprintable() for line in lines), [line for line in lines if not line.isprintable()]
    assert not any("Traceback" in line or "internal error" in line for line in lines), lines


# --- signatures and every header the receiver reads ------------------------------------------------

NON_ASCII_SIGNATURES = [
    "sha256=" + "é" * 64,
    "sha256=ü",
    "sha256=" + "0" * 63 + "\u00ff",
    "\u00e9",
    "sha256=" + "a" * 64 + "\u00a0",
]


@pytest.mark.parametrize("signature", NON_ASCII_SIGNATURES)
def test_a_non_ascii_agentdesk_signature_is_401(served, signature):
    body = event()
    head = post_head(
        "/hooks/chat",
        {
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "X-Agentdesk-Signature": signature.encode("latin-1"),
        },
    )
    assert raw(served.port, head + body)[0] == 401
    # UTF-8 bytes of the same text too (the header decodes them as Latin-1)
    head = post_head(
        "/hooks/chat",
        {
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "X-Agentdesk-Signature": signature.encode("utf-8"),
        },
    )
    assert raw(served.port, head + body)[0] == 401
    assert served.files("new") == [] and served.files("tmp") == []
    assert normal_post(served.port)[0] == 200
    assert_log_is_inert(served.lines)


@pytest.mark.parametrize(
    "signature", [b"\xc3\xa9" * 20, "ü".encode("latin-1") * 28, b"abc", b"=" * 40, b"\x1b[2J" + b"A" * 28]
)
def test_a_non_ascii_or_malformed_twilio_signature_is_401(served, signature):
    body = b"From=%2B14155550123&Body=hi&MessageSid=SM1"
    head = post_head(
        "/hooks/sms",
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Content-Length": str(len(body)),
            "X-Twilio-Signature": signature,
        },
    )
    assert raw(served.port, head + body)[0] == 401
    assert served.files("new", "sms") == [] and served.files("tmp", "sms") == []
    assert_log_is_inert(served.lines)


@pytest.mark.parametrize(
    "host",
    [b"h\xc3\xa9llo.example", b"example.com:abc", b"[::1", b"\x1b]8;;evil\x07", b"a" * 3000, b"example.com:99999999"],
)
@pytest.mark.parametrize("header", ["Host", "X-Forwarded-Host", "X-Forwarded-Proto"])
def test_hostile_host_and_forwarding_headers_cannot_break_twilio_verification(served, header, host):
    body = b"From=%2B14155550123&Body=hi&MessageSid=SM1"
    head = (
        b"POST /hooks/sms HTTP/1.1\r\n"
        + header.encode()
        + b": "
        + host
        + b"\r\n"
        + (b"Host: x\r\n" if header != "Host" else b"")
        + b"Content-Type: application/x-www-form-urlencoded\r\nX-Twilio-Signature: "
        + b"A" * 27
        + b"=\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
    )
    assert raw(served.port, head + body)[0] == 401
    assert served.files("tmp", "sms") == []
    assert_log_is_inert(served.lines)


@pytest.mark.parametrize(
    "length, status",
    [
        ("\u0661\u0662", 411),  # Arabic-Indic digits: int() would take them
        ("+12", 411),
        ("1_2", 411),
        ("0x10", 411),
        ("-1", 411),
        ("", 411),
        ("1e3", 411),
        ("9" * 30, 411),
        ("999999999999999999", 413),
        (str(5 * 1024 * 1024 + 1), 413),
    ],
)
def test_every_odd_content_length_is_refused_before_the_body(served, length, status):
    started = time.monotonic()
    with connect(served.port) as client:
        client.sendall(
            post_head(
                "/hooks/chat",
                {
                    "Content-Type": "application/json",
                    "X-Agentdesk-Signature": sign(b"x"),
                    "Content-Length": length.encode("utf-8"),
                },
            )
        )
        assert read_response(client)[0] == status  # no body was sent: answered from the headers alone
    assert time.monotonic() - started < 0.9
    assert served.files("tmp") == [] and served.files("new") == []


def test_conflicting_framing_and_unknown_codings_are_refused(served):
    body = event()
    both = post_head(
        "/hooks/chat",
        {"X-Agentdesk-Signature": sign(body), "Content-Length": str(len(body)), "Transfer-Encoding": "chunked"},
    )
    assert raw(served.port, both + body)[0] == 400
    twice = (
        post_head("/hooks/chat", {"X-Agentdesk-Signature": sign(body), "Content-Length": str(len(body))})[:-2]
        + b"Content-Length: 5\r\n\r\n"
    )
    assert raw(served.port, twice + body)[0] == 411
    for coding in ("gzip", "gzip, chunked", "chunked, chunked", "\u00e9"):
        head = post_head("/hooks/chat", {"X-Agentdesk-Signature": sign(body), "Transfer-Encoding": coding})
        assert raw(served.port, head + body)[0] == 501, coding
    assert raw(served.port, post_head("/hooks/chat", {"X-Agentdesk-Signature": sign(body)}))[0] == 411
    assert served.files("new") == [] and served.files("tmp") == []


def test_a_hostile_content_type_stays_one_clean_header_line_in_the_spool_file(served):
    body = b"a=1"
    content_type = b"text/plain; x=\x1b[31m\xc2\x9b\x7f\tend"
    head = post_head(
        "/hooks/chat", {"Content-Type": content_type, "Content-Length": "3", "X-Agentdesk-Signature": sign(body)}
    )
    assert raw(served.port, head + body)[0] == 200
    (name,) = served.files("new")
    data = (served.chat / "new" / name).read_bytes()
    header, _, rest = data.partition(b"\r\n\r\n")
    assert rest == body and b"\r" not in header and b"\n" not in header and b"\x1b" not in header


def test_expect_100_continue_gets_its_refusal_before_sending_the_body(served):
    with connect(served.port) as client:
        client.sendall(
            post_head(
                "/hooks/chat",
                {"Content-Length": str(10**9), "Expect": "100-continue", "X-Agentdesk-Signature": sign(b"")},
            )
        )
        status, _, _ = read_response(client)
        assert status == 413
    with connect(served.port) as client:
        body = event()
        client.sendall(
            post_head(
                "/hooks/chat",
                {
                    "Content-Length": str(len(body)),
                    "Expect": "100-continue",
                    "Content-Type": "application/json",
                    "X-Agentdesk-Signature": sign(body),
                },
            )
        )
        assert client.recv(100).startswith(b"HTTP/1.1 100")
        client.sendall(body)
        assert read_response(client)[0] == 200


def test_too_many_or_too_large_headers_are_refused(served):
    many = post_head("/hooks/chat", {f"X-Filler-{i}": "v" for i in range(150)})
    assert raw(served.port, many)[0] == 431
    large = post_head("/hooks/chat", {f"X-Filler-{i}": "v" * 8000 for i in range(20)})
    assert raw(served.port, large)[0] == 431
    assert normal_post(served.port)[0] == 200


def test_healthz_answers_get_and_head_without_authentication(served):
    for method in ("GET", "HEAD"):
        connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
        connection.request(method, "/healthz")
        response = connection.getresponse()
        assert response.status == 200 and response.read() == (b"ok\n" if method == "GET" else b"")
        connection.close()


def test_a_wrong_signature_after_the_whole_body_leaves_nothing(served):
    body = b"x" * 300_000
    head = post_head(
        "/hooks/chat",
        {"Content-Type": "application/json", "Content-Length": str(len(body)), "X-Agentdesk-Signature": sign(b"other")},
    )
    assert raw(served.port, head + body)[0] == 401
    assert served.files("tmp") == [] and served.files("new") == []


# --- chunked bodies ----------------------------------------------------------------------------------


def chunked(body: bytes, size: int = 7, extension: bytes = b"") -> bytes:
    parts = [
        b"%x%s\r\n%s\r\n" % (len(body[i : i + size]), extension, body[i : i + size]) for i in range(0, len(body), size)
    ]
    return b"".join(parts) + b"0\r\nX-Trailer: t\r\n\r\n"


def test_a_signed_chunked_body_is_stored_whole(served):
    body = event(5)
    head = post_head(
        "/hooks/chat",
        {"Content-Type": "application/json", "Transfer-Encoding": "chunked", "X-Agentdesk-Signature": sign(body)},
    )
    status, _, answer = raw(served.port, head + chunked(body, extension=b";name=value"))
    assert status == 200
    assert (served.chat / "new" / json.loads(answer)["stored"]).read_bytes() == body


def test_a_chunked_body_over_max_bytes_is_413_while_it_streams(served):
    body = b"y" * 5000
    head = post_head(
        "/hooks/small",
        {"Content-Type": "application/json", "Transfer-Encoding": "chunked", "X-Agentdesk-Signature": sign(body)},
    )
    assert raw(served.port, head + chunked(body, size=400))[0] == 413
    assert served.files("tmp", "small") == [] and served.files("new", "small") == []


@pytest.mark.parametrize(
    "broken",
    [
        b"zz\r\nabc\r\n0\r\n\r\n",
        b"3\r\nabcXY0\r\n\r\n",
        b"-1\r\n",
        b"3" * 2000 + b"\r\n",
        b"ffffffffffffffffffff\r\n",
        b"3\r\nabc\r\n0\r\n" + b"T: v\r\n" * 40 + b"\r\n",
    ],
)
def test_broken_chunking_is_400_and_leaves_nothing(served, broken):
    head = post_head(
        "/hooks/chat",
        {"Content-Type": "application/json", "Transfer-Encoding": "chunked", "X-Agentdesk-Signature": sign(b"abc")},
    )
    assert raw(served.port, head + broken)[0] in (400, 413)
    assert served.files("tmp") == [] and served.files("new") == []


# --- slow, idle, vanishing clients ------------------------------------------------------------------


def test_a_slowloris_trickling_headers_is_cut_at_the_header_deadline(served):
    with connect(served.port) as client:
        started = time.monotonic()
        client.sendall(b"POST /hooks/chat HTTP/1.1\r\nHost: x\r\n")
        closed = None
        for _ in range(40):  # one byte every 0.1 s: a per-read timeout would never fire
            try:
                client.sendall(b"X")
            except OSError:
                closed = time.monotonic()
                break
            time.sleep(0.1)
            if wait_until(lambda: not served.server.connections, 0):
                closed = time.monotonic()
                break
        assert closed is not None and closed - started < HEADER_TIMEOUT + 1.0
    assert any("request headers and no more within 1 s" in line for line in served.lines)
    assert_log_is_inert(served.lines)


def test_a_body_that_stalls_gets_408_at_the_body_deadline_and_its_tmp_file_goes(served):
    with connect(served.port) as client:
        client.sendall(
            post_head(
                "/hooks/chat",
                {
                    "Content-Type": "application/json",
                    "Content-Length": str(5 * 1024 * 1024),
                    "X-Agentdesk-Signature": sign(b""),
                },
            )
            + b"z" * 100_000
        )
        assert wait_until(lambda: len(served.files("tmp")) == 1, 1.0)
        started = time.monotonic()
        status, headers, _ = read_response(client)
        assert status == 408 and headers["connection"] == "close"
        assert time.monotonic() - started < BODY_TIMEOUT + 0.8
    assert served.files("tmp") == [] and served.files("new") == []
    assert any("bytes of the body within 1.5 s (body_timeout)" in line for line in served.lines)


def test_a_client_that_vanishes_mid_body_is_one_log_line_and_no_file(served):
    with connect(served.port) as client:
        client.sendall(
            post_head(
                "/hooks/chat",
                {"Content-Type": "application/json", "Content-Length": "100000", "X-Agentdesk-Signature": sign(b"")},
            )
            + b"z" * 5000
        )
        assert wait_until(lambda: len(served.files("tmp")) == 1, 1.0)
    assert wait_until(lambda: served.files("tmp") == [], 1.0)
    assert wait_until(lambda: any("after 5000 of 100000 bytes" in line for line in served.lines), 1.0)
    vanished = [line for line in served.lines if "of the body" in line]
    assert len(vanished) == 1 and "closed the connection" in vanished[0]
    assert_log_is_inert(served.lines)
    # a reset instead of a clean close is one line too
    client = connect(served.port)
    client.sendall(post_head("/hooks/chat", {"Content-Length": "100000", "X-Agentdesk-Signature": sign(b"")}) + b"z")
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    time.sleep(0.1)
    client.close()
    assert wait_until(lambda: served.files("tmp") == [] and not served.server.connections, 1.0)
    assert_log_is_inert(served.lines)
    assert normal_post(served.port)[0] == 200


def test_stalled_clients_do_not_slow_a_normal_post_and_over_the_cap_is_503(served):
    stalled = []
    for i in range(MAX_CONNECTIONS - 5):
        client = connect(served.port)
        if i % 2:
            client.sendall(b"POST /hooks/chat HTTP/1.1\r\nHost: x\r\n")  # mid-header
        else:
            client.sendall(
                post_head("/hooks/chat", {"Content-Length": str(5 * 1024 * 1024), "X-Agentdesk-Signature": sign(b"")})
                + b"q" * 65536
            )
        stalled.append(client)
    assert wait_until(lambda: len(served.server.connections) == MAX_CONNECTIONS - 5, 2.0)
    latencies = []
    for i in range(5):
        status, seconds = normal_post(served.port, i)
        assert status == 200
        latencies.append(seconds)
    assert max(latencies) < 0.5
    # fill the cap with idle connections; one more gets 503 at once
    idle = [connect(served.port) for _ in range(5)]
    assert wait_until(lambda: len(served.server.connections) == MAX_CONNECTIONS, 2.0)
    started = time.monotonic()
    with connect(served.port) as extra:
        status, headers, _ = read_response(extra)
    assert status == 503 and headers["retry-after"] and time.monotonic() - started < 0.5
    # the deadlines free every slot; then a post is served again
    assert wait_until(lambda: not served.server.connections, HEADER_TIMEOUT + BODY_TIMEOUT + 1.5)
    assert normal_post(served.port)[0] == 200
    for client in stalled + idle:
        client.close()
    assert served.files("tmp") == []
    assert_log_is_inert(served.lines)


def test_two_hundred_idle_connections_hold_no_thread_beyond_the_header_deadline(served):
    baseline = threading.active_count()
    idle = [connect(served.port) for _ in range(200)]
    time.sleep(0.3)
    assert threading.active_count() <= baseline + MAX_CONNECTIONS
    assert wait_until(
        lambda: threading.active_count() <= baseline and not served.server.connections, HEADER_TIMEOUT + 1.5
    )
    for client in idle:
        client.close()
    assert normal_post(served.port)[0] == 200


def test_a_kept_alive_connection_left_idle_is_closed(served):
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
    connection.request("GET", "/healthz")
    assert connection.getresponse().read() == b"ok\n"
    assert wait_until(lambda: not served.server.connections, HEADER_TIMEOUT + 1.0)
    connection.close()


def test_a_client_that_never_reads_its_answers_is_dropped_and_frees_its_thread(served):
    """Pipelined requests whose answers are never read fill the socket buffers until the
    receiver's send blocks: the send is bounded (header_timeout + body_timeout), then the
    connection is closed, with one log line."""
    baseline = threading.active_count()
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # small: the answers pile up sooner
    client.connect(("127.0.0.1", served.port))
    client.setblocking(False)
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 512
    sent, progress, until = 0, time.monotonic(), time.monotonic() + 20
    # Until the receiver takes no more for a while: its send is blocked on the full buffers.
    while time.monotonic() - progress < 1.0 and time.monotonic() < until:
        try:
            sent += client.send(request)
            progress = time.monotonic()
        except BlockingIOError:
            time.sleep(0.05)
    assert served.server.connections, f"the receiver took all {sent} bytes"
    assert wait_until(
        lambda: not served.server.connections and threading.active_count() <= baseline,
        HEADER_TIMEOUT + BODY_TIMEOUT + 3,
    )
    client.close()
    assert any("connection ended" in line for line in served.lines), [x for x in served.lines if "GET" not in x]
    assert_log_is_inert(served.lines)
    assert normal_post(served.port)[0] == 200


# --- the log -------------------------------------------------------------------------------------------

HOSTILE_TEXT = [
    b"\x1b]52;c;SGVsbG8=\x07",
    b"\x1b[2J\x1b[H",
    b"\xc2\x9b31m",
    b"\xe2\x80\xae",
    b"\x9d8;;x\x9c",
    b"\x07\x08\x7f",
    b"%1b%5b2J",
]


@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_everything_logged_from_a_client_is_escaped(served, text):
    requests = [
        b"GET /" + text + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # request line and path (404, logged)
        b"POST /hooks/" + text + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",  # unknown spool name
        b"G\x1bT / HTTP/1.1\r\n\r\n" + text,  # a method no one implements
        b"GET / HTTP/" + text + b"\r\n\r\n",  # a bad version, echoed in the stdlib's error line
        text + b"\r\n\r\n",  # garbage for a request line
        post_head("/hooks/chat", {"X-Agentdesk-Signature": text, "Content-Length": "2", "Content-Type": text}) + b"{}",
    ]
    for data in requests:
        with connect(served.port) as client:
            client.sendall(data)
            try:
                read_response(client)
            except (http.client.HTTPException, OSError):
                pass
    assert served.lines
    assert_log_is_inert(served.lines)
    assert not any(char in line for line in served.lines for char in "\x1b\x9b\x9d\u202e\x07")


# --- memory: a real receiver process under 50 stalled 5 MiB bodies -------------------------------------


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_fifty_stalled_five_mib_bodies_do_not_grow_the_receiver(tmp_path):
    config_path = write_config(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = (
        "import sys; from pathlib import Path; from agentdesk import config; "
        "from agentdesk.channels.webhook import receiver; "
        f"s = config.load(Path({str(config_path)!r})); "
        f"server = receiver.make_server(receiver.endpoints_from_settings(s), host='127.0.0.1', port={port}, "
        "limits=receiver.Limits(10, 30, 256)); print('ready', flush=True); server.serve_forever()"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    clients = []
    try:
        assert process.stdout.readline().strip() == "ready"
        assert normal_post(port)[0] == 200
        before = _rss_kib(process.pid)
        size = 5 * 1024 * 1024
        chunk = b"m" * (size - 1)
        for _ in range(50):
            client = connect(port)
            client.sendall(
                post_head(
                    "/hooks/chat",
                    {
                        "Content-Type": "application/json",
                        "Content-Length": str(size),
                        "X-Agentdesk-Signature": sign(b""),
                    },
                )
            )
            clients.append(client)
        for client in clients:  # all but the last byte of every body
            client.sendall(chunk)
        assert wait_until(lambda: len(os.listdir(tmp_path / "chat" / "tmp")) == 50, 10)
        time.sleep(0.5)
        grown_mib = (_rss_kib(process.pid) - before) / 1024
        assert grown_mib < 40, f"the receiver grew by {grown_mib:.0f} MiB holding 50 stalled bodies"
        assert normal_post(port)[0] == 200
        for client in clients:
            client.close()
        assert wait_until(lambda: os.listdir(tmp_path / "chat" / "tmp") == [], 5)
        assert os.listdir(tmp_path / "chat" / "new") and len(os.listdir(tmp_path / "chat" / "new")) == 2
    finally:
        for client in clients:
            client.close()
        process.terminate()
        process.wait(10)
