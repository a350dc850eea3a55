"""Satisfaction surveys end to end: real Dovecot, real aiosmtpd, the real sync worker with an
injected clock, the CLI for `show` and `report`.

Solved -> nothing before the delay -> the survey once after it -> the customer's "5, thanks!"
-> the rating stored, the conversation still solved, the report counting it; a rating with a
question reopens; machine mail is never surveyed.
"""

from __future__ import annotations

import email
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from email.policy import compat32
from email.utils import format_datetime
from pathlib import Path

import pytest
from integration.email.servers import Dovecot, mailbox_config

from agentdesk import config as config_module
from agentdesk.app import conversations
from agentdesk.app.desk import Desk as AppDesk

pytestmark = pytest.mark.integration

OURS = "support@example.com"
CUSTOMER = "greta@velo.example"
SURVEY = (
    "Hi {{ customer_first_name }},\n\nhow did we do with {{ ref }}? Reply with a number from 1 (bad) "
    "to 5 (great), and a comment if you like.\n"
)


@pytest.fixture(scope="module")
def dovecot():
    server = Dovecot()
    server.start()
    yield server
    server.cleanup()


def _config(tmp_path: Path, dovecot, user: str, smtp) -> Path:
    path = mailbox_config(tmp_path, dovecot, user, smtp.port)
    text = path.read_text(encoding="utf-8")
    marker = 'after_fetch = "keep"\n'
    path.write_text(text.replace(marker, marker + 'csat = "csat"\ncsat_delay = "1h"\n', 1), encoding="utf-8")
    templates = tmp_path / "templates"
    templates.mkdir(exist_ok=True)
    (templates / "csat.md").write_text(SURVEY, encoding="utf-8")
    return path


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "agentdesk", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "AGENTDESK_AGENT": "tester"},
        timeout=120,
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


_counter = iter(range(1, 1_000_000))


def _mail(
    *,
    sender: str = CUSTOMER,
    subject: str = "Battery will not charge",
    body: str = "Hello, my battery stopped charging.\n",
    in_reply_to: str = "",
    at: datetime | None = None,
) -> bytes:
    n = next(_counter)
    threading = f"In-Reply-To: <{in_reply_to}>\r\nReferences: <{in_reply_to}>\r\n" if in_reply_to else ""
    return (
        f"Return-Path: <{sender}>\r\nFrom: Greta Lindqvist <{sender}>\r\nTo: {OURS}\r\nSubject: {subject}\r\n"
        f"Date: {format_datetime(at or datetime.now(timezone.utc))}\r\n"
        f"Message-ID: <csat{n}.{os.getpid()}@{sender.rpartition('@')[2]}>\r\n{threading}"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    ).encode()


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def _solve(config: Path, clock: Clock, ref: str = "AD-1") -> None:
    desk = AppDesk(config_module.load(config), agent="tester", now=clock)
    conversations.claim(desk, [ref])
    conversations.update(desk, ref, status="solved")


def _survey_of(smtp) -> email.message.Message:
    surveys = [email.message_from_bytes(raw, policy=compat32) for raw in smtp.received]
    surveys = [m for m in surveys if "how did we do" in m.get_payload(decode=True).decode()]
    assert len(surveys) == 1, [m["Subject"] for m in surveys]
    return surveys[0]


def _surveyed(dovecot, mail_user, smtp, tmp_path, desk_factory):
    """A customer's mail synced, its conversation solved and, two hours on, surveyed:
    (config, desk, clock, the survey as the customer received it)."""
    config = _config(tmp_path, dovecot, mail_user, smtp)
    desk = desk_factory(config)
    clock = Clock()
    dovecot.append(mail_user, [_mail()])
    desk.sync_once(clock)
    _solve(config, clock)
    clock.now += timedelta(hours=2)
    desk.sync_once(clock)
    return config, desk, clock, _survey_of(smtp)


def test_a_survey_after_the_delay_once_and_a_rating_that_keeps_it_solved(
    dovecot, mail_user, smtp, tmp_path, desk_factory
):
    config = _config(tmp_path, dovecot, mail_user, smtp)
    desk = desk_factory(config)
    clock = Clock()
    dovecot.append(mail_user, [_mail()])
    assert desk.sync_once(clock).stored == 1
    _solve(config, clock)

    clock.now += timedelta(minutes=59)
    assert desk.sync_once(clock).ok
    assert smtp.received == []  # not before the delay

    clock.now += timedelta(minutes=2)
    assert desk.sync_once(clock).ok
    survey = _survey_of(smtp)
    assert survey["To"] == CUSTOMER and survey["Auto-Submitted"] == "auto-replied"
    assert "[AD-1]" in survey["Subject"]
    clock.now += timedelta(hours=5)
    assert desk.sync_once(clock).ok
    assert len(smtp.received) == 1  # never twice

    answer = _mail(
        subject="Re: " + survey["Subject"],
        body="5, thanks!\n\n> how did we do with AD-1?\n",
        in_reply_to=survey["Message-ID"].strip("<>"),
        at=clock.now,
    )
    dovecot.append(mail_user, [answer])
    report = desk.sync_once(clock)
    assert report.ok and report.stored == 1
    assert desk.rows("SELECT rating, comment FROM satisfactionsurvey") == [(5, "thanks!")]
    assert desk.rows("SELECT status FROM conversation") == [("solved",)]
    assert desk.count("SELECT count(*) FROM message WHERE direction = 'inbound'") == 2  # the answer is in the thread

    shown = json.loads(_cli(config, "show", "AD-1", "--json").stdout)
    assert shown["status"] == "solved"
    assert shown["csat"]["rating"] == 5 and shown["csat"]["comment"] == "thanks!"
    until = (clock.now + timedelta(days=1)).isoformat()
    counted = json.loads(_cli(config, "report", "--until", until, "--json").stdout)["csat"]
    assert counted["sent"] == 1 and counted["responses"] == 1 and counted["csat"] == 1.0
    assert counted["by_agent"] == [
        {
            "agent": "tester",
            "sent": 1,
            "responses": 1,
            "satisfied": 1,
            "csat": 1.0,
            "response_rate": 1.0,
            "average": 5.0,
        }
    ]


def test_a_rating_with_a_new_question_reopens(dovecot, mail_user, smtp, tmp_path, desk_factory):
    config, desk, clock, survey = _surveyed(dovecot, mail_user, smtp, tmp_path, desk_factory)

    dovecot.append(
        mail_user,
        [
            _mail(
                subject="Re: " + survey["Subject"],
                at=clock.now,
                body="2 - it charges again but the display stays dark. What can I do?\n",
                in_reply_to=survey["Message-ID"].strip("<>"),
            )
        ],
    )
    assert desk.sync_once(clock).ok
    assert desk.rows("SELECT rating FROM satisfactionsurvey") == [(2,)]
    assert desk.rows("SELECT status FROM conversation") == [("open",)]
    # A bad rating alerts the assignee: an event in the audit naming them.
    alerts = desk.rows("SELECT detail FROM event WHERE action = 'csat_alert'")
    assert len(alerts) == 1 and json.loads(alerts[0][0])["assignee"] == "tester"

    _solve(config, clock)  # solved again: still one survey per conversation, ever
    clock.now += timedelta(hours=2)
    desk.sync_once(clock)
    assert len(smtp.received) == 1


@pytest.mark.parametrize("sender", ["no-reply@shop.example", "mailer-daemon@mx.velo.example"])
def test_machine_mail_is_never_surveyed(sender, dovecot, mail_user, smtp, tmp_path, desk_factory):
    config = _config(tmp_path, dovecot, mail_user, smtp)
    desk = desk_factory(config)
    clock = Clock()
    dovecot.append(mail_user, [_mail(sender=sender, subject="Your order shipped")])
    desk.sync_once(clock)
    _solve(config, clock)
    clock.now += timedelta(hours=2)
    assert desk.sync_once(clock).ok
    assert smtp.received == []
    assert desk.count("SELECT count(*) FROM message WHERE kind = 'survey'") == 0
    skipped = desk.rows("SELECT skipped FROM satisfactionsurvey")
    # A bounce-like sender is set aside as system mail at ingest; the loop rule refuses the rest.
    assert len(skipped) == 1 and ("machine address" in skipped[0][0] or "set aside" in skipped[0][0])


def test_an_answer_that_lost_its_headers_finds_the_survey_by_its_ref(dovecot, mail_user, smtp, tmp_path, desk_factory):
    config, desk, clock, survey = _surveyed(dovecot, mail_user, smtp, tmp_path, desk_factory)
    # A webmail reply without In-Reply-To or References: the [AD-1] tag of the subject is left.
    dovecot.append(mail_user, [_mail(subject="Re: " + survey["Subject"], body="👍 sehr gut\n", at=clock.now)])
    assert desk.sync_once(clock).ok
    assert desk.rows("SELECT rating, comment FROM satisfactionsurvey") == [(5, "sehr gut")]
    assert desk.rows("SELECT status FROM conversation") == [("solved",)]
    assert desk.rows("SELECT thread_reason FROM message WHERE direction = 'inbound' ORDER BY id") == [
        ("new",),
        ("subject-tag",),
    ]
