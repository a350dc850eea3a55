"""What a sync's parser process does with one chunk of fetched mail (the email source's pool,
`email.parser_pool`).

Parse each message (`mime.parse_fetched`: the record, its content hash) and work out the SLA clocks
the conversation it would open starts with (`sla.opening`): most mail of a first sync opens a new
conversation, and those clocks were a fifth of storing it. A reply (In-Reply-To or References)
gets none: it usually joins a conversation, and an opening costs about a tenth of parsing. The
storing process uses an opening only when the conversation's facts, policy and `now` turn out to
be exactly the ones assumed here (ingest checks), so nothing changes but where the CPU is spent.
Imports the parser and the pure SLA arithmetic, not the database layer. (It lives in sync, not
beside the MIME parser in channels: SLA clocks are none of a wire format's business.)
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from datetime import datetime

from agentdesk.channels.base import InboundMessage, set_raw
from agentdesk.channels.email.mime import parse_fetched, ready  # noqa: F401  (ready: the pool's warm-up)
from agentdesk.domain import sla


def start_parser(parent_pid: int) -> None:
    """The pool's initializer.

    Storing is the sync's critical path (one writer, in order); the parsers run ahead of it. On
    two cores three busy processes share them evenly unless told: niced, the parsers take what the
    storing process leaves.

    A parser also ends when the sync that started it is gone: killed (SIGKILL, the OOM killer),
    the sync never tells it to stop, and it would wait for work on its end of the job queue for
    ever. (Not PR_SET_PDEATHSIG: that fires when the *thread* that started the process ends, and
    the pool may be started from a worker thread that ends before the sync does.)"""
    try:
        os.nice(10)
    except OSError:
        pass
    threading.Thread(target=_end_with_parent, args=(parent_pid,), name="parent-watch", daemon=True).start()


PARENT_CHECK_EVERY = 0.5  # seconds


def _end_with_parent(parent_pid: int) -> None:
    while True:
        time.sleep(PARENT_CHECK_EVERY)
        if os.getppid() != parent_pid:  # re-parented: the sync is gone, nobody reads our results
            os._exit(0)


# A new conversation's priority (ingest's _NewConversation).
NEW_PRIORITY = "normal"


def parse_chunk(
    items: Sequence[tuple[int, datetime, bytes]], source: str, now: datetime, policy: sla.Policy | None
) -> list[tuple[int, InboundMessage, sla.Opening | None]]:
    """(uid, internal date, raw) -> (uid, message, opening). `policy`: the one a new conversation
    of this source gets (None: no policy applies, no opening); `now`: the time it is stored with.

    The messages come back without their raw mail (`raw` empty): the storing process holds it
    already and puts it back (`set_raw`); sending it back would cost a second copy there, and
    the pickling both ways."""
    parsed = parse_fetched(items, source)
    for _, message in parsed:
        set_raw(message, b"")
    if policy is None:
        return [(uid, message, None) for uid, message in parsed]
    chunk: list[tuple[int, InboundMessage, sla.Opening | None]] = []
    for uid, message in parsed:
        if message.in_reply_to or message.references:
            # A reply most likely joins the conversation of what it replies to: no clocks start.
            # (When it does open one, ingest refreshes the clocks itself.)
            chunk.append((uid, message, None))
            continue
        at = min(message.received_at, now)
        try:
            opening = sla.opening(
                policy,
                priority=NEW_PRIORITY,
                created_at=at,
                waiting_since=at if message.kind == "message" else None,
                now=now,
            )
        except Exception:  # ingest refreshes the clocks itself (and reports what is wrong there)
            opening = None
        chunk.append((uid, message, opening))
    return chunk
