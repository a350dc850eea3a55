"""Hostile entries in a spool's new/: real links, loops, directories, FIFOs, sockets, devices and
hard links beside real payloads, ingested into a real SQLite database.

Whatever is in new/, a pass never reads outside the spool, never fails for the other files, and
never leaves a watching `sync` spinning.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import BASIC_CONFIG, FIXED_NOW
from sqlmodel import func, select

from agentdesk import config
from agentdesk.channels.webhook import spool as spooling
from agentdesk.domain import clocks
from agentdesk.store import db
from agentdesk.store.models import Message
from agentdesk.sync.sources import spool as spool_source

SECRET_TEXT = "root:$6$not-for-customers$"
GOOD_FILES = 32


@pytest.fixture
def spool(tmp_path):
    text = (
        f'[database]\nurl = "sqlite:///{tmp_path / "agentdesk.db"}"\n'
        + BASIC_CONFIG
        + f'[[spool]]\nname = "chat"\npath = "{tmp_path / "chat"}"\nadapter = "generic"\nkind = "chat"\n'
    )
    settings = config.parse(text, source=tmp_path / "config.toml")
    engine = db.open_database(settings.database_url)
    source = spool_source.SpoolSource(
        settings.spool[0], engine=engine, policies=clocks.Policies.from_settings(settings), now_fn=lambda: FIXED_NOW
    )
    source.ensure()
    yield source
    engine.dispose()


def good(source, count: int = GOOD_FILES) -> list[str]:
    return [
        spooling.write_payload(
            source.path,
            json.dumps(
                {
                    "id": f"evt-{i}",
                    "sender": {"handle": f"widget:{i}"},
                    "text": f"message {i}",
                    "timestamp": "2026-11-17T09:00:00Z",
                }
            ).encode(),
            "application/json",
            durable=False,
        )
        for i in range(count)
    ]


def stored_texts(source) -> list[str]:
    with db.read_session(source.engine) as session:
        return list(session.exec(select(Message.body_text)))


def outside_secret(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "shadow"
    secret.parent.mkdir(exist_ok=True)
    secret.write_text(json.dumps({"id": "stolen", "sender": {"handle": "x:1"}, "text": SECRET_TEXT}))
    return secret


def _symlink_to_secret(new: Path, tmp: Path) -> str:
    os.symlink(outside_secret(tmp), new / "0000.link.json")
    return "a symbolic link"


def _relative_symlink_out(new: Path, tmp: Path) -> str:
    outside_secret(tmp)
    os.symlink("../../outside/shadow", new / "0000.relative.json")
    return "a symbolic link"


def _dangling_symlink(new: Path, tmp: Path) -> str:
    os.symlink(tmp / "nowhere.json", new / "0000.dangling.json")
    return "a symbolic link"


def _link_loop(new: Path, tmp: Path) -> str:
    os.symlink(new / "0000.loop-b.json", new / "0000.loop-a.json")
    os.symlink(new / "0000.loop-a.json", new / "0000.loop-b.json")
    return "a symbolic link"


def _self_loop(new: Path, tmp: Path) -> str:
    os.symlink("0000.self.json", new / "0000.self.json")
    return "a symbolic link"


def _symlink_to_directory(new: Path, tmp: Path) -> str:
    os.symlink("/etc", new / "0000.etc.json")
    return "a symbolic link"


def _symlink_to_device(new: Path, tmp: Path) -> str:
    os.symlink("/dev/zero", new / "0000.zero.json")
    return "a symbolic link"


def _directory(new: Path, tmp: Path) -> str:
    (new / "x.json").mkdir()
    (new / "x.json" / "inner.json").write_text("{}")
    return "a directory"


def _fifo(new: Path, tmp: Path) -> str:
    os.mkfifo(new / "0000.pipe.json")  # nobody ever writes: opening it blocking would hang the pass
    return "a FIFO"


def _socket(new: Path, tmp: Path) -> str:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(new / "0000.sock.json"))
    listener.listen()
    _KEEP.append(listener)
    return "a socket"


def _char_device(new: Path, tmp: Path) -> str:
    try:
        os.mknod(new / "0000.null.json", 0o600 | 0o020000, os.makedev(1, 3))  # like /dev/null
    except (PermissionError, OSError) as error:
        pytest.skip(f"cannot create a device node here: {error}")
    return "a character device"


def _block_device(new: Path, tmp: Path) -> str:
    try:
        os.mknod(new / "0000.loop.json", 0o600 | 0o060000, os.makedev(7, 0))  # like /dev/loop0
    except (PermissionError, OSError) as error:
        pytest.skip(f"cannot create a device node here: {error}")
    return "a block device"


def _hard_link_to_outside(new: Path, tmp: Path) -> str:
    os.link(outside_secret(tmp), new / "0000.hard.json")
    return "hard links"


_KEEP: list[socket.socket] = []
HOSTILE: dict[str, Callable[[Path, Path], str]] = {
    "symlink to a file outside": _symlink_to_secret,
    "relative symlink out of the spool": _relative_symlink_out,
    "dangling symlink": _dangling_symlink,
    "link loop of two": _link_loop,
    "link to itself": _self_loop,
    "symlink to a directory": _symlink_to_directory,
    "symlink to a device": _symlink_to_device,
    "directory named x.json": _directory,
    "FIFO": _fifo,
    "unix socket": _socket,
    "character device": _char_device,
    "block device": _block_device,
    "hard link to a file outside": _hard_link_to_outside,
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_every_non_regular_entry_is_rejected_with_its_reason_and_the_rest_is_stored(spool, tmp_path, kind):
    new = spool.path / "new"
    good(spool)
    before = {entry.name for entry in os.scandir(new)}
    expected = HOSTILE[kind](new, tmp_path)
    hostile = sorted({entry.name for entry in os.scandir(new)} - before)
    started = time.process_time()
    result = spool.poll()
    assert time.process_time() - started < 5
    assert result.stored == GOOD_FILES and result.failed == []
    assert sorted(name for name, _ in result.rejected) == hostile
    assert all(expected in reason for _, reason in result.rejected), result.rejected
    assert os.listdir(new) == []
    for name in hostile:
        moved = spool.path / "rejected" / name
        assert os.path.lexists(moved)
        sidecar = (spool.path / "rejected" / (name + ".error")).read_text()
        assert expected in sidecar and SECRET_TEXT not in sidecar
    # nothing outside the spool was read, and a link's target was neither moved nor touched
    assert not any(SECRET_TEXT in text for text in stored_texts(spool))
    if (tmp_path / "outside" / "shadow").exists():
        assert SECRET_TEXT in (tmp_path / "outside" / "shadow").read_text()
    assert os.path.isdir("/etc") and os.path.exists("/dev/zero")
    # handled: the next pass has nothing to do and a watching sync sleeps
    assert not spool.has_pending()
    assert spool.poll().fetched == 0
    assert dict(spool.rejected())[hostile[0]].startswith("not a regular file" if "hard" not in kind else "a regular")


def test_a_link_named_like_a_payload_is_moved_itself_never_its_target(spool, tmp_path):
    secret = outside_secret(tmp_path)
    os.symlink(secret, spool.path / "new" / "1.json")
    spool.poll()
    moved = spool.path / "rejected" / "1.json"
    assert moved.is_symlink() and os.readlink(moved) == str(secret)
    assert secret.read_text().endswith(f'"{SECRET_TEXT}"}}')


def test_a_file_swapped_for_a_link_or_a_fifo_after_the_listing_is_not_followed(spool, tmp_path, monkeypatch):
    """The race: lstat sees a regular file, then the writer swaps it before the open."""
    secret = outside_secret(tmp_path)
    names = good(spool, 3)
    real_lstat = os.lstat
    swaps = {names[0]: lambda path: os.symlink(secret, path), names[1]: lambda path: os.mkfifo(path)}

    def lstat_then_swap(path, *args, **kwargs):
        result = real_lstat(path, *args, **kwargs)
        swap = swaps.pop(Path(path).name, None) if Path(path).parent.name == "new" else None
        if swap is not None:
            os.unlink(path)
            swap(path)
        return result

    monkeypatch.setattr(spooling.os, "lstat", lstat_then_swap)
    started = time.monotonic()
    result = spool.poll()
    assert time.monotonic() - started < 5  # the FIFO did not block the pass
    assert result.stored == 1
    reasons = dict(result.rejected)
    assert "a symbolic link" in reasons[names[0]] and "a FIFO" in reasons[names[1]]
    assert not any(SECRET_TEXT in text for text in stored_texts(spool))


def test_many_kinds_at_once_do_not_fail_the_spool(spool, tmp_path):
    new = spool.path / "new"
    good(spool)
    for make in (_link_loop, _self_loop, _directory, _fifo, _socket, _symlink_to_secret, _dangling_symlink):
        make(new, tmp_path)
    result = spool.poll()
    assert result.stored == GOOD_FILES and len(result.rejected) == 8 and result.ok


def test_an_entry_that_cannot_be_moved_is_skipped_once_and_sync_does_not_spin(spool, tmp_path, monkeypatch, caplog):
    new = spool.path / "new"
    good(spool, 3)
    (new / "stuck.json").mkdir()
    real_rename = os.rename

    def refuse_stuck(source, target, *args, **kwargs):
        if Path(source) == new / "stuck.json":
            raise PermissionError(1, "Operation not permitted")
        return real_rename(source, target, *args, **kwargs)

    monkeypatch.setattr(spool_source.os, "rename", refuse_stuck)
    with caplog.at_level(logging.WARNING, logger="agentdesk.sync"):
        result = spool.poll()
        assert result.stored == 3 and result.ok and result.rejected == []
        assert not spool.has_pending() and spool.pending() == []
        # a watching sync: poll, wait, poll ... for a while; it must sleep, not spin
        cpu, passes = time.process_time(), 0
        until = time.monotonic() + 1.5
        while time.monotonic() < until:
            spool.poll()
            passes += 1
            spool.wait(timeout=until - time.monotonic(), interval=0.05)
        assert passes <= 3 and time.process_time() - cpu < 0.5
    skipped = [r.getMessage() for r in caplog.records if "stuck.json" in r.getMessage()]
    assert (
        len(skipped) == 1
        and "not a regular file but a directory" in skipped[0]
        and "Operation not permitted" in skipped[0]
    )
    assert os.listdir(spool.path / "rejected") == []  # no orphan sidecar
    assert (new / "stuck.json").is_dir()
    # another entry under the same name is looked at again at once
    monkeypatch.undo()
    (new / "stuck.json").rmdir()
    (new / "stuck.json").write_text("not json")
    assert spool.has_pending()
    assert spool.poll().rejected[0][0] == "stuck.json"


def test_a_directory_in_new_does_not_make_a_watching_sync_spin(spool, tmp_path):
    (spool.path / "new" / "x.json").mkdir()
    cpu, passes = time.process_time(), 0
    until = time.monotonic() + 1.5
    while time.monotonic() < until:
        spool.poll()
        passes += 1
        spool.wait(timeout=until - time.monotonic(), interval=0.05)
    assert passes <= 2 and time.process_time() - cpu < 0.5
    assert (spool.path / "rejected" / "x.json").is_dir()


def test_hostile_file_names_reach_the_log_and_sidecars_escaped(spool, caplog):
    new = spool.path / "new"
    names = [
        "evil\x1b]52;c;SGVsbG8=\x07.json",
        "bidi\u202etxt.json",
        "c1\x9b31m.json",
        "line\nbreak.json",
        os.fsdecode(b"bytes\xff\xfe.json"),
    ]
    for name in names:
        (new / name).write_bytes(b"{broken")
    os.symlink("/etc/passwd", new / "link\x1b[2J.json")
    with caplog.at_level(logging.WARNING, logger="agentdesk.sync"):
        result = spool.poll()
    assert len(result.rejected) == len(names) + 1
    lines = [record.getMessage() for record in caplog.records] + result.lines()
    assert lines and all(line.isprintable() for line in lines), lines
    assert any("\\x1b]52" in line for line in lines) and any("\\u202e" in line for line in lines)
    for name, _ in result.rejected:
        assert os.path.lexists(spool.path / "rejected" / name)
        assert (spool.path / "rejected" / (name + ".error")).read_text(encoding="utf-8").strip().isprintable()
    assert all(reason.isprintable() for _, reason in spool.rejected())


def test_nothing_planted_in_tmp_redirects_a_sidecar_write(spool, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    for guess in ("bad.json.error.tmp", "bad.json.error", "bad.json"):
        os.symlink(victim, spool.path / "tmp" / guess)
    (spool.path / "new" / "bad.json").write_text("{")
    assert spool.poll().rejected[0][0] == "bad.json"
    assert victim.read_text() == "keep me"
    assert "invalid JSON" in (spool.path / "rejected" / "bad.json.error").read_text()


def test_a_dangling_link_in_rejected_is_not_overwritten(spool, tmp_path):
    os.symlink(tmp_path / "elsewhere", spool.path / "rejected" / "bad.json")
    (spool.path / "new" / "bad.json").write_text("{")
    spool.poll()
    assert (spool.path / "rejected" / "bad.json").is_symlink()
    assert (spool.path / "rejected" / "bad.1.json").read_text() == "{"
    assert not (tmp_path / "elsewhere").exists()


def test_retry_of_rejected_links_rejects_them_again_without_reading(spool, tmp_path):
    os.symlink(outside_secret(tmp_path), spool.path / "new" / "a.json")
    (spool.path / "new" / "d.json").mkdir()
    spool.poll()
    assert sorted(name for name, _ in spool.rejected()) == ["a.json", "d.json"]
    result = spool.retry()
    assert result.stored == 0 and sorted(name for name, _ in result.rejected) == ["a.json", "d.json"]
    assert not any(SECRET_TEXT in text for text in stored_texts(spool))


def test_oversized_and_growing_files_are_bounded_through_the_open_descriptor(spool):
    spool.spool.max_bytes = 1000
    (spool.path / "new" / "big.json").write_bytes(b" " * 5000)
    (reason,) = [reason for _, reason in spool.poll().rejected]
    assert "over the size limit: 5000 bytes > max_bytes 1000" in reason


def test_a_regular_file_without_read_access_is_rejected_not_fatal(spool):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    good(spool, 2)
    locked = spool.path / "new" / "0000.locked.json"
    locked.write_text("{}")
    locked.chmod(0)
    result = spool.poll()
    assert result.stored == 2 and "cannot be opened" in dict(result.rejected)["0000.locked.json"]


def test_the_count_in_the_database_matches(spool, tmp_path):
    good(spool, 5)
    _link_loop(spool.path / "new", tmp_path)
    spool.poll()
    with db.read_session(spool.engine) as session:
        assert session.exec(select(func.count()).select_from(Message)).one() == 5
