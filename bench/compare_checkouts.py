"""One command on two checkouts, alternating, whole process: median wall and CPU time of each.

    python bench/compare_checkouts.py --before /work/baseline --after /work/main --runs 15 \
        --config-before B.toml --config-after A.toml -- sync --once

Every run starts `python -m agentdesk` with the checkout as its working directory, so each imports
its own tree (byte-compile both first: `python -m compileall -q CHECKOUT/agentdesk`). The two
alternate run by run, so a machine that is busy slows both alike; CPU time (user + system of the
process and its children) moves far less with load than wall time, and is printed beside it.
`--config-before/--config-after`: each checkout's own config, since an older checkout refuses a
database a newer one has upgraded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


def run_once(checkout: str, config: str | None, command: list[str]) -> tuple[float, float]:
    argv = [sys.executable, "-m", "agentdesk", *(["--config", config] if config else []), *command]
    started = time.perf_counter()
    process = subprocess.Popen(argv, cwd=checkout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{checkout}: {' '.join(command)} failed: {process.stderr.read().decode()[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the checkout measured first in each pair")
    parser.add_argument("--after", required=True)
    parser.add_argument("--config-before")
    parser.add_argument("--config-after")
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("command", nargs="+", help="the agentdesk command and its arguments (after --)")
    args = parser.parse_args()
    sides = {"before": (args.before, args.config_before), "after": (args.after, args.config_after)}
    samples: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
    for _ in range(args.runs):
        for side, (checkout, config) in sides.items():
            samples[side].append(run_once(checkout, config, args.command))
    print(f"agentdesk {' '.join(args.command)}: {args.runs} alternating runs, load {os.getloadavg()[0]:.1f}")
    for side, (checkout, _) in sides.items():
        wall = statistics.median(s[0] for s in samples[side]) * 1000
        cpu = statistics.median(s[1] for s in samples[side]) * 1000
        print(f"  {side:<6} {checkout}: wall {wall:6.0f} ms  CPU {cpu:6.0f} ms")
    ratio = statistics.median(s[1] for s in samples["after"]) / statistics.median(s[1] for s in samples["before"])
    print(f"  CPU after/before: {ratio:.3f}")


if __name__ == "__main__":
    main()
