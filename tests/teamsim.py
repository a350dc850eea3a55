"""A team in processes: agents claiming, replying, tagging and changing status on the same
conversations while an ingest process feeds in new customer mail. Used by the soak test
(tests/integration/test_team_soak.py) and the benchmark (bench/bench_team.py).

Every agent acts the way the TUI does: read the conversation (and its version), think, then act
with `expected_version`, so a change by someone else in between is refused rather than
overwritten. Each process writes a log of what succeeded, so the caller can check the database
against it: no lost update, no duplicate reply, every action in the audit log.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy.exc import OperationalError

STATUSES = ("open", "pending", "on_hold", "open")
INGEST_BATCH = 10
TAGS = ("billing", "battery", "vip", "repair")


def now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Log:
    agent: str
    successes: list = field(default_factory=list)  # (action, conversation_id, base_version)
    conflicts: int = 0
    locked: int = 0  # "database is locked" (or deadlock) errors that reached the agent
    latencies: list = field(default_factory=list)  # seconds per attempted action


def seed(url: str, *, conversations: int) -> dict[int, int]:
    """Conversations from distinct customers, each with one waiting customer message: id -> version."""
    from agentdesk import config
    from agentdesk.channels.base import InboundMessage
    from agentdesk.domain import clocks
    from agentdesk.ingest import ingest_message
    from agentdesk.store import db
    from agentdesk.store.models import Conversation

    engine = db.open_database(url)
    policies = clocks.Policies.from_settings(config.Settings())
    ids = []
    with db.write_session(engine) as session:
        for index in range(conversations):
            message = InboundMessage(
                source="support",
                channel="email",
                external_id=f"seed-{index}@customers.example",
                sender_address=f"customer{index}@customers.example",
                sender_name=f"Customer {index}",
                received_at=now() - timedelta(minutes=5),
                subject=f"Problem {index}",
                body_text="Please help.",
            )
            ids.append(ingest_message(session, message, policies=policies, now=now()).conversation_id)
        session.commit()
        versions = {conversation_id: session.get(Conversation, conversation_id).version for conversation_id in ids}
    engine.dispose()
    return versions


def run_agent(
    url: str,
    agent: str,
    conversation_ids: list[int],
    seconds: float,
    log_path: str,
    seed_value: int,
    think: tuple[float, float] = (0.0, 0.02),
) -> None:
    from agentdesk import config
    from agentdesk.domain import clocks, queue, replies
    from agentdesk.errors import Conflict
    from agentdesk.store import db
    from agentdesk.store.models import Conversation

    rng = random.Random(seed_value)
    engine = db.open_database(url)
    policies = clocks.Policies.from_settings(config.Settings())
    log = Log(agent)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conversation_id = rng.choice(conversation_ids)
        with db.read_session(engine) as session:
            base_version = session.get(Conversation, conversation_id).version
        time.sleep(rng.uniform(*think))  # reading and typing
        action = rng.choice(("claim", "reply", "tag", "status", "priority"))
        started = time.perf_counter()
        try:
            with db.write_session(engine) as session:
                if action == "claim":
                    queue.claim(session, conversation_id=conversation_id, agent=agent, now=now())
                else:
                    conversation = queue.load_for_update(session, f"AD-{conversation_id}")
                    if action == "reply":
                        replies.reply(
                            session,
                            conversation=conversation,
                            body=f"Reply from {agent}",
                            agent=agent,
                            agent_name=agent,
                            now=now(),
                            policies=policies,
                            expected_version=base_version,
                        )
                    else:
                        changes = {
                            "tag": {"add_tags": [rng.choice(TAGS)]},
                            "status": {"status": rng.choice(STATUSES)},
                            "priority": {"priority": rng.choice(queue.PRIORITIES)},
                        }[action]
                        changed = queue.change(
                            session,
                            conversation=conversation,
                            agent=agent,
                            now=now(),
                            policies=policies,
                            expected_version=base_version,
                            **changes,
                        )
                        if not changed:
                            action = f"{action}-noop"
                session.commit()
            log.successes.append((action, conversation_id, base_version))
        except Conflict:
            log.conflicts += 1
        except OperationalError as error:
            if "locked" in str(error) or "deadlock" in str(error):
                log.locked += 1
            else:
                raise
        log.latencies.append(time.perf_counter() - started)
    engine.dispose()
    Path(log_path).write_text(json.dumps(asdict(log)))


def run_ingest(
    url: str, conversation_ids: list[int], seconds: float, log_path: str, follow_up_share: float = 2 / 3
) -> None:
    """The sync's part: customer follow-ups into the shared conversations and brand-new mail."""
    from agentdesk import config
    from agentdesk.channels.base import InboundMessage
    from agentdesk.domain import clocks
    from agentdesk.ingest import ingest_message
    from agentdesk.store import db

    engine = db.open_database(url)
    policies = clocks.Policies.from_settings(config.Settings())
    stored, locked, index = [], 0, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        # As the sync does with new mail: a small batch per transaction, committed with its checkpoint.
        batch = []
        for _ in range(INGEST_BATCH):
            index += 1
            # A share are follow-ups by the customer of a shared conversation, the rest new mail.
            follow_up = int(index * follow_up_share) != int((index - 1) * follow_up_share)
            customer = index % len(conversation_ids) if follow_up else 10_000 + index
            batch.append(
                InboundMessage(
                    source="support",
                    channel="email",
                    external_id=f"live-{index}@customers.example",
                    sender_address=f"customer{customer}@customers.example",
                    sender_name="Customer",
                    received_at=now(),
                    subject="More information",
                    body_text=f"Follow-up {index}",
                    in_reply_to=f"seed-{customer}@customers.example" if follow_up else "",
                )
            )
        try:
            with db.write_session(engine) as session:
                results = [ingest_message(session, message, policies=policies, now=now()) for message in batch]
                session.commit()
            stored.extend((m.external_id, r.conversation_id) for m, r in zip(batch, results))
        except OperationalError as error:
            if "locked" in str(error) or "deadlock" in str(error):
                locked += 1
            else:
                raise
    engine.dispose()
    Path(log_path).write_text(json.dumps({"stored": stored, "locked": locked}))


def run_team(
    url: str,
    *,
    agents: int,
    seconds: float,
    conversations: int,
    workdir: Path,
    think: tuple[float, float] = (0.0, 0.02),
    follow_up_share: float = 2 / 3,
) -> dict:
    """Seed, run `agents` agent processes and one ingest process, and return their logs.

    `think`: seconds an agent spends between reading a conversation and acting on it. The
    default keeps every agent busy all the time (the desk's capacity); people take seconds.
    """
    import multiprocessing

    seeded = seed(url, conversations=conversations)
    ids = list(seeded)
    context = multiprocessing.get_context("spawn")
    processes = []
    for number in range(agents):
        log_path = workdir / f"agent{number}.json"
        processes.append(
            context.Process(target=run_agent, args=(url, f"agent{number}", ids, seconds, str(log_path), number, think))
        )
    ingest_log = workdir / "ingest.json"
    processes.append(context.Process(target=run_ingest, args=(url, ids, seconds, str(ingest_log), follow_up_share)))
    started = time.monotonic()
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=seconds + 120)
        assert process.exitcode == 0, f"a simulated process failed (exit code {process.exitcode})"
    elapsed = time.monotonic() - started
    logs = [json.loads((workdir / f"agent{n}.json").read_text()) for n in range(agents)]
    return {
        "conversation_ids": ids,
        "seed_versions": seeded,
        "agents": logs,
        "ingest": json.loads(ingest_log.read_text()),
        "elapsed": elapsed,
        "think": think,
    }
