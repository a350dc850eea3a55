"""Attachments end to end against a real Dovecot: synced, kept once, saved and opened safely.

The mail is appended over IMAP, `agentdesk sync` stores it, and the CLI (`attachment list`,
`save`, `open`) reads it back as a user would; the bytes saved are compared with the bytes sent.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path

import pytest
from integration.email.servers import mailbox_config

from agentdesk.cli import main

pytestmark = pytest.mark.integration

WHEN = datetime(2026, 11, 16, 10, 0, tzinfo=timezone.utc)


def _mail(n: int, files: list[tuple[str, str, bytes]], *, sender: str = "greta@velo.example") -> tuple:
    message = EmailMessage()
    message["From"] = f"Greta <{sender}>"
    message["To"] = "support@example.com"
    message["Subject"] = f"Broken part {n}"
    message["Message-ID"] = f"<attach-{n}@velo.example>"
    message["Date"] = "Mon, 16 Nov 2026 10:00:00 +0000"
    message.set_content("Photo and invoice attached.\n")
    for name, content_type, data in files:
        maintype, subtype = content_type.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return WHEN, message.as_bytes()


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


def _setup(tmp_path, dovecot, user, desk_factory, mails, extra: str = ""):
    config_path = mailbox_config(tmp_path, dovecot, user, 1)
    if extra:
        config_path.write_text(config_path.read_text() + extra)
    dovecot.append(user, mails)
    desk = desk_factory(config_path)
    report = desk.sync_once()
    assert report.ok, report.errors
    return config_path, desk


def _listed(config_path: Path, ref: str) -> list[dict]:
    status, out, err = _run("--config", str(config_path), "attachment", "list", ref, "--json")
    assert status == 0, err
    return json.loads(out)


def test_saved_bytes_equal_the_sent_bytes_and_repeats_are_kept_once(dovecot, mail_user, tmp_path, desk_factory):
    rng = random.Random(7)
    photo = bytes(rng.randrange(256) for _ in range(300_000))
    invoice = b"%PDF-1.4\n" + bytes(rng.randrange(256) for _ in range(40_000))
    mails = [
        _mail(1, [("photo.jpg", "image/jpeg", photo), ("invoice.pdf", "application/pdf", invoice)]),
        # The same invoice again, in another conversation: its bytes are kept once.
        _mail(2, [("invoice.pdf", "application/pdf", invoice)], sender="olaf@velo.example"),
    ]
    config_path, desk = _setup(tmp_path, dovecot, mail_user, desk_factory, mails)

    listed = _listed(config_path, "AD-1")
    assert [(a["n"], a["name"], a["content_type"], a["size"], a["state"]) for a in listed] == [
        (1, "photo.jpg", "image/jpeg", len(photo), "stored"),
        (2, "invoice.pdf", "application/pdf", len(invoice), "stored"),
    ]
    assert listed[0]["sha256"] == hashlib.sha256(photo).hexdigest()
    # `show --json` numbers them the same way.
    status, out, _ = _run("--config", str(config_path), "show", "AD-1", "--json")
    shown = [
        (a["n"], a["name"], a["sha256"], a["state"]) for m in json.loads(out)["messages"] for a in m["attachments"]
    ]
    assert shown == [(a["n"], a["name"], a["sha256"], a["state"]) for a in listed]

    out_dir = tmp_path / "saved"
    out_dir.mkdir()
    for n, sent in ((1, photo), (2, invoice)):
        status, out, err = _run(
            "--config", str(config_path), "attachment", "save", "AD-1", str(n), "--to", str(out_dir)
        )
        assert status == 0, err
        assert hashlib.sha256(Path(out.strip()).read_bytes()).hexdigest() == hashlib.sha256(sent).hexdigest()
    # Saving again never overwrites: a numbered name beside it.
    status, out, _ = _run("--config", str(config_path), "attachment", "save", "AD-1", "2", "--to", str(out_dir))
    assert Path(out.strip()).name == "invoice (1).pdf"
    assert sorted(p.name for p in out_dir.iterdir()) == ["invoice (1).pdf", "invoice.pdf", "photo.jpg"]

    store = tmp_path / "attachments"
    kept = [p for p in store.rglob("*") if p.is_file()]
    assert sorted(p.name for p in kept) == sorted(
        {hashlib.sha256(photo).hexdigest(), hashlib.sha256(invoice).hexdigest()}
    )
    assert _listed(config_path, "AD-2")[0]["sha256"] == hashlib.sha256(invoice).hexdigest()
    # No sender's name became a path in the store.
    assert not list(store.rglob("*.pdf")) and not list(store.rglob(".incoming-*"))

    # A file damaged in the store (a host crash, a hand edit) is never handed out: the bytes are
    # taken again from the raw message, and the store is mended.
    (damaged,) = [p for p in kept if p.name == hashlib.sha256(photo).hexdigest()]
    damaged.write_bytes(b"\0" * len(photo))
    status, out, err = _run("--config", str(config_path), "attachment", "save", "AD-1", "1", "--to", str(out_dir))
    assert status == 0, err
    assert Path(out.strip()).read_bytes() == photo and damaged.read_bytes() == photo
    # Mail attachments are written in place without an fsync: a crash can leave one torn or lost.
    damaged.write_bytes(photo[: len(photo) // 2])
    status, out, err = _run("--config", str(config_path), "attachment", "save", "AD-1", "1", "--to", str(out_dir))
    assert status == 0 and Path(out.strip()).read_bytes() == photo and damaged.read_bytes() == photo, err
    damaged.unlink()
    status, out, err = _run("--config", str(config_path), "attachment", "save", "AD-1", "1", "--to", str(out_dir))
    assert status == 0 and Path(out.strip()).read_bytes() == photo and damaged.read_bytes() == photo, err


HOSTILE = [
    "../../etc/passwd",
    "CON",
    "nul.txt",
    "\x1b]0;pwned\x07\x1b[31mred\x1b[0m.txt",
    "a" * 300 + ".pdf",
    "",
    "invoice\u202eFDP.exe",
    ".bashrc",
    "..",
    "dir/sub\\evil.sh",
]


def test_hostile_names_are_saved_safely_inside_the_directory(dovecot, mail_user, tmp_path, desk_factory):
    files = [(name, "application/octet-stream", f"file {i}".encode()) for i, name in enumerate(HOSTILE)]
    config_path, _desk = _setup(tmp_path, dovecot, mail_user, desk_factory, [_mail(3, files)])
    listed = _listed(config_path, "AD-1")
    assert len(listed) == len(HOSTILE)
    for item in listed:  # the list itself never carries a control character to the terminal
        assert not any(ord(c) < 32 or c in "\u202e\x7f" for c in item["name"])

    out_dir = tmp_path / "downloads"
    out_dir.mkdir()
    (tmp_path / "etc").mkdir()
    for i in range(len(HOSTILE)):
        status, out, err = _run(
            "--config", str(config_path), "attachment", "save", "AD-1", str(i + 1), "--to", str(out_dir)
        )
        assert status == 0, err
        path = Path(out.strip())
        assert path.parent == out_dir
        assert path.read_bytes() == f"file {i}".encode()
        name = path.name
        assert not name.startswith(".") and "/" not in name and "\\" not in name
        assert not any(ord(c) < 32 or c == "\u202e" for c in name)
        assert len(name.encode()) <= 255
        assert name.split(".")[0].upper() not in ("CON", "NUL")
    assert len(list(out_dir.iterdir())) == len(HOSTILE)
    assert not list((tmp_path / "etc").iterdir())


def test_over_the_caps_an_attachment_is_withheld_with_its_size(dovecot, mail_user, tmp_path, desk_factory):
    big = os.urandom(150_000)
    small = [os.urandom(40_000) for _ in range(3)]
    mails = [
        _mail(4, [("huge.bin", "application/octet-stream", big)]),
        _mail(
            5,
            [(f"part{i}.bin", "application/octet-stream", data) for i, data in enumerate(small)],
            sender="olaf@velo.example",
        ),
    ]
    config_path, desk = _setup(
        tmp_path,
        dovecot,
        mail_user,
        desk_factory,
        mails,
        "\n[attachments]\nmax_file_bytes = 100000\nmax_message_bytes = 100000\n",
    )
    (huge,) = _listed(config_path, "AD-1")
    assert (huge["state"], huge["size"]) == ("withheld", len(big))
    assert "max_file_bytes" in huge["reason"]
    parts = _listed(config_path, "AD-2")
    assert [p["state"] for p in parts] == ["stored", "stored", "withheld"]
    assert "max_message_bytes" in parts[2]["reason"] and parts[2]["size"] == 40_000

    status, out, err = _run("--config", str(config_path), "attachment", "save", "AD-1", "1", "--to", str(tmp_path))
    assert status == 1 and "was not kept" in err and not out
    status, out, _ = _run("--config", str(config_path), "attachment", "list", "AD-1")
    assert "withheld" in out and "146.5 KiB" in out
    # The message itself was stored whole, raw included.
    assert desk.count("SELECT count(*) FROM messageraw") == 2


def test_a_mail_too_big_to_parse_whole_gives_its_attachment_from_the_raw_message(
    dovecot, mail_user, tmp_path, desk_factory
):
    video = os.urandom(5 * 1024 * 1024)
    config_path, desk = _setup(
        tmp_path, dovecot, mail_user, desk_factory, [_mail(6, [("clip.mp4", "video/mp4", video)])]
    )
    (clip,) = _listed(config_path, "AD-1")
    assert (clip["state"], clip["size"], clip["sha256"]) == ("in_raw", len(video), hashlib.sha256(video).hexdigest())
    status, out, err = _run("--config", str(config_path), "attachment", "save", "AD-1", "1", "--to", str(tmp_path))
    assert status == 0, err
    assert hashlib.sha256(Path(out.strip()).read_bytes()).digest() == hashlib.sha256(video).digest()
    assert _listed(config_path, "AD-1")[0]["state"] == "stored"  # taken out once, kept from then on


def test_open_hands_a_safely_named_private_copy_to_the_configured_opener(dovecot, mail_user, tmp_path, desk_factory):
    record = tmp_path / "opened.txt"
    opener = tmp_path / "opener.sh"
    opener.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {record}\n')
    opener.chmod(0o755)
    config_path, _desk = _setup(
        tmp_path,
        dovecot,
        mail_user,
        desk_factory,
        [_mail(7, [("../../report\x1b[2J.txt", "text/plain", b"hello")])],
        f'\n[attachments]\nopener = "{opener}"\n',
    )
    status, _out, err = _run("--config", str(config_path), "attachment", "open", "AD-1", "1")
    assert status == 0, err
    for _ in range(100):
        if record.exists() and record.read_text():
            break
        import time

        time.sleep(0.05)
    handed = Path(record.read_text())
    assert handed.name == "report.txt" and handed.read_bytes() == b"hello"
    assert (handed.stat().st_mode & 0o777) == 0o600 and (handed.parent.parent.stat().st_mode & 0o777) == 0o700

    # An opener that fails says so, with what it said: not "opened".
    failing = tmp_path / "failing.sh"
    failing.write_text('#!/bin/sh\necho "no application knows text/plain" >&2\nexit 3\n')
    failing.chmod(0o755)
    failing_config = tmp_path / "failing.toml"
    failing_config.write_text(config_path.read_text().replace(f'opener = "{opener}"', f'opener = "{failing}"'))
    status, out, err = _run("--config", str(failing_config), "attachment", "open", "AD-1", "1")
    assert status == 1 and out == ""
    assert err.count("\n") == 1 and "exit status 3" in err and "no application knows text/plain" in err
    # One that is the viewer itself (still running after a moment) has opened it.
    viewer = tmp_path / "viewer.sh"
    viewer.write_text("#!/bin/sh\nsleep 5\n")
    viewer.chmod(0o755)
    viewer_config = tmp_path / "viewer.toml"
    viewer_config.write_text(config_path.read_text().replace(f'opener = "{opener}"', f'opener = "{viewer}"'))
    assert _run("--config", str(viewer_config), "attachment", "open", "AD-1", "1")[0] == 0

    assert _run("--config", str(config_path), "attachment", "open", "AD-1", "9")[0] == 4
    assert _run("--config", str(config_path), "attachment", "list", "AD-99")[0] == 4
    assert _run("--config", str(config_path), "attachment", "save", "AD-1", "1", "--to", str(tmp_path / "nope"))[0] == 2
