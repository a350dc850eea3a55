"""Receiver throughput on loopback: `webhook serve` beside a minimal stdlib server, same load, same run.

    python bench/bench_receiver.py [--requests 5000] [--rounds 4] [--warmup 1] [--clients 2]
                                   [--connections 16] [--slow-clients 50] [--probes 200] [--before TREE]

The receiver runs in a child process (as `agentdesk webhook serve` does) with durable writes
(fsync of file and directory before each 200). Its anchor runs in another child process: a
minimal server on the standard library's ThreadingHTTPServer that reads the body, checks the same
HMAC signature, writes the body to a new file, fsyncs the file and its directory and answers 200
(in one write, keep-alive, the same listen backlog). `--before TREE` adds a third server: the
receiver of another source tree (a directory holding an `agentdesk` package, e.g. from
`git archive`), to compare before and after in the same run.

The load generator runs in `--clients` other processes, each with `--connections` keep-alive
connections in threads, each posting signed generic JSON payloads (~400 bytes), `--requests` per
server per round. The servers take turns, in a rotated order each round, for `--rounds` rounds,
after `--warmup` rounds that are not counted (the first round of a run was the slowest of its
server's rounds in most runs, whichever server took it: it penalised the first server).
Prints, per round and then per server, requests/s (median of the rounds), latency p50 and p99
(of every request of every round, measured by the clients) and the server's CPU time per request
(/proc), and checks that every acknowledged payload is a file on disk. Loopback only; a time
limit per round (--timeout) bounds the run.

Before the throughput rounds, the hostile-input figures: the receiver's RSS and a normal request's
latency (median, p95; `--probes` signed posts, one connection each, as a proxy without upstream
keep-alive sends them) first with no other client (the anchor), then while `--slow-clients`
clients stall, each having sent headers announcing a 5 MiB body and all of that body but its last
byte. RSS is the receiver process's VmRSS (and its peak, VmHWM) from /proc.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import itertools
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

SECRET = "bench-secret"


def _serve(root: str, port: int, ready, durable: bool, tree: str | None = None) -> None:
    if tree:
        sys.path.insert(0, tree)
    from agentdesk import config
    from agentdesk.channels.webhook import receiver

    settings = config.parse(
        f'[[spool]]\nname = "chat"\npath = "{root}/chat"\nadapter = "generic"\n'
        f'kind = "chat"\nsecret_command = "echo {SECRET}"\n'
    )
    server = receiver.make_server(
        receiver.endpoints_from_settings(settings), host="127.0.0.1", port=port, durable=durable
    )
    ready.set()
    server.serve_forever()


def _serve_anchor(root: str, port: int, ready, durable: bool) -> None:
    """The minimal server: verify, write, fsync file and directory, answer."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    directory = Path(root) / "chat" / "new"
    directory.mkdir(parents=True)
    key = SECRET.encode()
    names = itertools.count()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args) -> None:  # noqa: A002 (the stdlib's name)
            pass

        def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, self.headers.get("X-Agentdesk-Signature", "")):
                self.answer(401, b'{"error": "bad signature"}')
                return
            name = f"{next(names)}.json"
            fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            try:
                os.write(fd, body)
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            if durable:
                fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            self.answer(200, json.dumps({"stored": name}).encode())

        def answer(self, status: int, body: bytes) -> None:
            head = f"HTTP/1.1 {status} {'OK' if status == 200 else 'Unauthorized'}\r\n"
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            self.wfile.write(head.encode() + body)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024

    server = Server(("127.0.0.1", port), Handler)
    ready.set()
    server.serve_forever()


def _client(port: int, count: int, connections: int, offset: int, go, timeout: float, out) -> None:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    per_connection = [count // connections + (1 if i < count % connections else 0) for i in range(connections)]
    bodies = []
    for index, n in enumerate(per_connection):  # signed before the clock starts
        mine = []
        for k in range(n):
            number = offset + index * 1_000_000 + k
            body = json.dumps(
                {
                    "id": f"load-{number}",
                    "sender": {"name": "Load", "handle": f"load:{number % 500}"},
                    "text": "x" * 300,
                    "timestamp": "2026-11-24T09:00:00Z",
                }
            ).encode()
            mine.append((body, "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()))
        bodies.append(mine)
    go.wait()
    deadline = time.time() + timeout

    def run(requests: list[tuple[bytes, str]]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        for body, signature in requests:
            if time.time() > deadline:
                break
            started = time.perf_counter()
            try:
                connection.request(
                    "POST",
                    "/hooks/chat",
                    body=body,
                    headers={"Content-Type": "application/json", "X-Agentdesk-Signature": signature},
                )
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    with lock:
                        errors.append(f"HTTP {response.status}")
                    continue
            except (OSError, http.client.HTTPException) as error:
                with lock:
                    errors.append(type(error).__name__)
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            mine.append(time.perf_counter() - started)
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run, args=(requests,)) for requests in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put((latencies, errors))


def _signed(number: int) -> tuple[bytes, str]:
    body = json.dumps(
        {
            "id": f"probe-{number}",
            "sender": {"name": "Probe", "handle": f"probe:{number % 50}"},
            "text": "x" * 300,
            "timestamp": "2026-11-24T09:00:00Z",
        }
    ).encode()
    return body, "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def _memory(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _probe(port: int, count: int, offset: int) -> tuple[float, float, int]:
    """Median and p95 latency (ms) of `count` signed posts, each on a new connection; and errors."""
    latencies, errors = [], 0
    for k in range(count):
        body, signature = _signed(offset + k)
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            connection.request(
                "POST",
                "/hooks/chat",
                body=body,
                headers={"Content-Type": "application/json", "X-Agentdesk-Signature": signature},
            )
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                errors += 1
                continue
        except (OSError, http.client.HTTPException):
            errors += 1
            continue
        finally:
            connection.close()
        latencies.append(time.perf_counter() - started)
    if not latencies:
        return float("nan"), float("nan"), errors
    latencies.sort()
    return statistics.median(latencies) * 1000, latencies[max(0, int(len(latencies) * 0.95) - 1)] * 1000, errors


def _stall(port: int, count: int, size: int) -> list[socket.socket]:
    """`count` clients that announce a `size`-byte body, send all of it but the last byte, and stall."""
    body = b"s" * (size - 1)
    head = (
        f"POST /hooks/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {size}\r\nX-Agentdesk-Signature: sha256={'0' * 64}\r\n\r\n"
    ).encode()
    clients: list[socket.socket] = []

    def one() -> None:
        client = socket.create_connection(("127.0.0.1", port), timeout=60)
        client.sendall(head)
        client.sendall(body)
        clients.append(client)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return clients


def hostile(port: int, pid: int, slow_clients: int, probes: int) -> None:
    rss, peak = _memory(pid)
    median, p95, errors = _probe(port, probes, 0)
    print(
        f"anchor, no stalled client: receiver RSS {rss:.1f} MiB (peak {peak:.1f}); normal post latency "
        f"median {median:.2f} ms, p95 {p95:.2f} ms ({probes} posts, errors {errors})"
    )
    started = time.perf_counter()
    stalled = _stall(port, slow_clients, 5 * 1024 * 1024)
    sent = time.perf_counter() - started
    time.sleep(0.5)
    median, p95, errors = _probe(port, probes, 1_000_000)
    rss, peak = _memory(pid)
    print(
        f"{len(stalled)} clients stalled at 5 MiB - 1 byte (sent in {sent:.1f} s): receiver RSS {rss:.1f} MiB "
        f"(peak {peak:.1f}); normal post latency median {median:.2f} ms, p95 {p95:.2f} ms ({probes} posts, "
        f"errors {errors})"
    )
    for client in stalled:
        client.close()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _percentile(values: list[float], share: float) -> float:
    return values[max(0, int(len(values) * share) - 1)]


class _Server:
    """One server under test in its own process, and what its rounds measured."""

    def __init__(self, label: str, target, root: Path, durable: bool, context, *extra) -> None:
        self.label, self.root = label, root
        self.port = _free_port()
        ready = context.Event()
        self.process = context.Process(target=target, args=(str(root), self.port, ready, durable, *extra), daemon=True)
        self.process.start()
        if not ready.wait(60):
            raise SystemExit(f"{label} did not start")
        self.rates: list[float] = []
        self.latencies: list[float] = []
        self.cpu_per_request: list[float] = []
        self.errors = 0

    def stored(self) -> int:
        return sum(1 for _ in (self.root / "chat" / "new").iterdir())

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(10)


def load_round(server: _Server, args, context, *, counted: bool = True) -> bool:
    """One round of load against `server`; False when an acknowledged payload is not on disk.
    A round not `counted` (a warm-up) is printed but left out of the server's figures."""
    out, go = context.Queue(), context.Event()
    per_client = [
        args.requests // args.clients + (1 if i < args.requests % args.clients else 0) for i in range(args.clients)
    ]
    clients = [
        context.Process(target=_client, args=(server.port, n, args.connections, i * 100_000_000, go, args.timeout, out))
        for i, n in enumerate(per_client)
    ]
    for client in clients:
        client.start()
    # Files stay until the end: deleting thousands between rounds made the next round's inode
    # allocation skip the recently deleted ones (ext4), a cost no production spool has.
    before = server.stored()
    time.sleep(1.0)  # the clients sign their bodies before the clock starts
    cpu = _cpu_seconds(server.process.pid)
    go.set()
    started = time.perf_counter()
    latencies: list[float] = []
    errors: list[str] = []
    for _ in clients:
        got, failed = out.get(timeout=args.timeout + 120)
        latencies += got
        errors += failed
    elapsed = time.perf_counter() - started
    cpu = _cpu_seconds(server.process.pid) - cpu
    for client in clients:
        client.join(30)
    stored = server.stored() - before
    rate = len(latencies) / elapsed
    latencies.sort()
    if counted:
        server.rates.append(rate)
        server.latencies += latencies
        server.cpu_per_request.append(cpu / max(1, len(latencies)))
        server.errors += len(errors)
    print(
        f"  {server.label}{'' if counted else ' (warm-up, not counted)'}: {len(latencies)} requests in {elapsed:.2f} s = {rate:,.0f} req/s; latency p50 "
        f"{statistics.median(latencies) * 1000:.1f} ms, p99 {_percentile(latencies, 0.99) * 1000:.1f} ms; "
        f"server CPU {cpu / max(1, len(latencies)) * 1e6:.0f} us/request; errors {len(errors)}; files {stored}",
        flush=True,
    )
    if stored != len(latencies):
        print(f"MISMATCH: {server.label}: {len(latencies)} acknowledged, {stored} stored", file=sys.stderr)
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5_000, help="requests per server per round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds; the servers take turns in each")
    parser.add_argument("--warmup", type=int, default=1, help="rounds before those, not counted")
    parser.add_argument("--clients", type=int, default=2, help="load generator processes")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections per client process")
    parser.add_argument("--timeout", type=float, default=300.0, help="stop sending after this many seconds a round")
    parser.add_argument("--no-fsync", action="store_true", help="skip fsync (to see what durability costs)")
    parser.add_argument("--slow-clients", type=int, default=50, help="stalled 5 MiB uploads (0: skip that phase)")
    parser.add_argument("--probes", type=int, default=200, help="normal posts timed with and without them")
    parser.add_argument("--before", metavar="TREE", help="also run the receiver of this source tree")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="agentdesk-bench-receiver-"))
    context = multiprocessing.get_context("spawn")
    durable = not args.no_fsync
    servers: list[_Server] = []
    try:
        receiver = _Server("receiver", _serve, root / "receiver", durable, context)
        servers.append(receiver)
        time.sleep(0.2)
        if args.slow_clients:
            hostile(receiver.port, receiver.process.pid, args.slow_clients, args.probes)
        servers.append(_Server("anchor (minimal stdlib server)", _serve_anchor, root / "anchor", durable, context))
        if args.before:
            tree = str(Path(args.before).resolve())
            servers.append(_Server("receiver before", _serve, root / "before", durable, context, tree))
        print(
            f"load: {args.clients} client processes x {args.connections} keep-alive connections, "
            f"{args.requests} signed posts per server per round; fsync {'on' if durable else 'off'}; "
            f"load average before: {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        consistent = True
        for number in range(-args.warmup, args.rounds):
            print(f"round {number + 1}:" if number >= 0 else "warm-up round:", flush=True)
            shift = number % len(servers)
            for server in servers[shift:] + servers[:shift]:
                consistent = load_round(server, args, context, counted=number >= 0) and consistent
        print(f"load average after: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
        print(f"{'server':<32} {'req/s (median)':>15} {'rounds':>22} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>11}")
        for server in servers:
            server.latencies.sort()
            rounds = "/".join(f"{rate:.0f}" for rate in server.rates)
            print(
                f"{server.label:<32} {statistics.median(server.rates):>15,.0f} {rounds:>22} "
                f"{statistics.median(server.latencies) * 1000:>8.1f} {_percentile(server.latencies, 0.99) * 1000:>8.1f} "
                f"{statistics.median(server.cpu_per_request) * 1e6:>11.0f}"
                + (f"  errors {server.errors}" if server.errors else "")
            )
        if not consistent:
            return 1
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
