"""The program: `agentdesk` (the console script) and `python -m agentdesk`.

Every command starts by importing what lives as long as the process: modules, classes, the ORM's
mapped tables; some hundred thousand objects. Python's cycle collector would walk them over and
over while they load, again in each full collection later, and several times more while the
interpreter shuts down, each time finding nothing to free; for a short command that was a third
of its CPU time. So the collector waits until the imports are done and then leaves what they built
out of its count (`gc.freeze`); what the command allocates is collected as usual. When the
command has returned, its output flushed and its databases, files and sockets closed by the code
that opened them, what is still alive is frozen too: the process is ending, and the operating
system frees its memory at once. In-process callers (tests) use `agentdesk.cli.main`, untouched.
"""

from __future__ import annotations

import gc
from typing import NoReturn


def main() -> NoReturn:
    gc.disable()
    try:
        from agentdesk.cli import run
    finally:
        gc.freeze()
        gc.enable()
    try:
        run()
    finally:
        gc.freeze()


if __name__ == "__main__":
    main()
