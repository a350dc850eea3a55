"""Receiver throughput on loopback: `webhook serve` in one process, a load generator in others.

    /work/venv/bin/python bench/bench_receiver.py [--requests 20000] [--clients 4] [--connections 16]
                                                  [--slow-clients 50] [--probes 200]

The receiver runs in a child process (as `agentdesk webhook serve` does) with durable writes
(fsync of file and directory before each 200). The load generator runs in `--clients` other
processes, each with `--connections` keep-alive connections in threads, each posting signed
generic JSON payloads (~400 bytes). Prints requests/s and latency percentiles (p50, p99) measured
by the clients, and checks that every acknowledged payload is a file in new/. Loopback only; the
total number of requests and a time limit (--timeout) bound the run.

Before the throughput run, the hostile-input figures: the receiver's RSS and a normal request's
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
import json
import multiprocessing
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

SECRET = "bench-secret"


def _serve(root: str, port: int, ready, durable: bool) -> None:
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


def _client(port: int, count: int, connections: int, offset: int, deadline: float, out) -> None:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    per_connection = [count // connections + (1 if i < count % connections else 0) for i in range(connections)]

    def run(index: int, n: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        for k in range(n):
            if time.time() > deadline:
                break
            number = offset + index * 1_000_000 + k
            body = json.dumps(
                {
                    "id": f"load-{number}",
                    "sender": {"name": "Load", "handle": f"load:{number % 500}"},
                    "text": "x" * 300,
                    "timestamp": "2026-11-24T09:00:00Z",
                }
            ).encode()
            signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
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

    threads = [threading.Thread(target=run, args=(i, n)) for i, n in enumerate(per_connection)]
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=2, help="load generator processes")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections per client process")
    parser.add_argument("--timeout", type=float, default=300.0, help="stop sending after this many seconds")
    parser.add_argument("--no-fsync", action="store_true", help="skip fsync (to see what durability costs)")
    parser.add_argument("--slow-clients", type=int, default=50, help="stalled 5 MiB uploads (0: skip that phase)")
    parser.add_argument("--probes", type=int, default=200, help="normal posts timed with and without them")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="agentdesk-bench-receiver-"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    server = context.Process(target=_serve, args=(str(root), port, ready, not args.no_fsync), daemon=True)
    server.start()
    try:
        if not ready.wait(30):
            raise SystemExit("the receiver did not start")
        time.sleep(0.2)
        if args.slow_clients:
            hostile(port, server.pid, args.slow_clients, args.probes)
            shutil.rmtree(root / "chat" / "new")
            (root / "chat" / "new").mkdir()
        out = context.Queue()
        per_client = [
            args.requests // args.clients + (1 if i < args.requests % args.clients else 0) for i in range(args.clients)
        ]
        deadline = time.time() + args.timeout
        started = time.perf_counter()
        clients = [
            context.Process(target=_client, args=(port, n, args.connections, i * 100_000_000, deadline, out))
            for i, n in enumerate(per_client)
        ]
        for client in clients:
            client.start()
        latencies: list[float] = []
        errors: list[str] = []
        for _ in clients:
            got, failed = out.get(timeout=args.timeout + 120)
            latencies += got
            errors += failed
        elapsed = time.perf_counter() - started
        for client in clients:
            client.join(30)
        stored = sum(1 for _ in (root / "chat" / "new").iterdir())
        latencies.sort()
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
        print(
            f"receiver: {len(latencies)} requests in {elapsed:.1f} s = {len(latencies) / elapsed:,.0f} req/s; "
            f"latency p50 {p50:.1f} ms, p99 {p99:.1f} ms; {args.clients} client processes x {args.connections} "
            f"connections; fsync {'off' if args.no_fsync else 'on'}; errors {len(errors)}; files in new/ {stored}"
        )
        if stored != len(latencies):
            print(f"MISMATCH: {len(latencies)} acknowledged, {stored} stored", file=sys.stderr)
            return 1
    finally:
        server.terminate()
        server.join(10)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
