"""A SQLite database a team shares on one host: its files group-writable whatever the umask.

Agents run agentdesk as their own Unix users on one database in a group-owned directory
(docs/teams.md). SQLite creates the database file with the creating process's umask and gives its
`-wal` and `-shm` files the database file's mode, so the first agent with a default umask of 022
would leave a database (644) that every other agent fails to write. When the directory is shared
(setgid, or group-writable), agentdesk creates the database and its lock file group-writable
itself, before SQLite opens them, and mends the files this user owns that lack group write.
`problems` is what `doctor` reports of the files this user cannot mend.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

GROUP_READ_WRITE = stat.S_IRGRP | stat.S_IWGRP


def is_shared(directory: Path) -> bool:
    """A directory meant for a group: setgid (new files keep its group) or group-writable."""
    try:
        mode = directory.stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_ISGID | stat.S_IWGRP))


def database_files(path: Path) -> list[Path]:
    """The files of the database at `path`: itself, its WAL and shared-memory files, the sync lock."""
    return [path, Path(f"{path}-wal"), Path(f"{path}-shm"), path.with_name(path.name + ".sync.lock")]


def prepare(path: Path) -> None:
    """Before SQLite opens `path`: in a shared directory, create the database file group-writable
    if it does not exist yet, and add group write to the database files this user owns."""
    if not is_shared(path.parent):
        return
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        pass
    except OSError:
        return  # SQLite, or the checks before it, say in words why it cannot be created
    else:
        try:
            os.fchmod(descriptor, stat.S_IMODE(os.fstat(descriptor).st_mode) | GROUP_READ_WRITE)
        finally:
            os.close(descriptor)
    for file in database_files(path):
        _mend(file)


def open_lock_file(path: Path) -> int:
    """A lock file's descriptor (read and write, created when missing): group-writable in a
    shared directory, so whichever agent or service runs next can take the lock."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    if is_shared(path.parent):
        _mend(path)
    return descriptor


def _mend(file: Path) -> None:
    try:
        status = file.stat()
    except OSError:
        return
    if status.st_uid == os.geteuid() and status.st_mode & GROUP_READ_WRITE != GROUP_READ_WRITE:
        try:
            os.chmod(file, stat.S_IMODE(status.st_mode) | GROUP_READ_WRITE)
        except OSError:
            pass


@dataclass(frozen=True)
class Problem:
    file: Path
    owner: str
    group: str
    reason: str  # what keeps the group out


def problems(path: Path) -> list[Problem]:
    """The database files in a shared directory that the directory's group cannot read and write
    (not group-writable, or of another group): the agents of the team fail on them."""
    directory = path.parent
    if not is_shared(directory):
        return []
    group_id = directory.stat().st_gid
    found = []
    for file in database_files(path):
        try:
            status = file.stat()
        except OSError:
            continue
        reasons = []
        if status.st_mode & GROUP_READ_WRITE != GROUP_READ_WRITE:
            reasons.append(f"mode {stat.filemode(status.st_mode)}: the group cannot write it")
        if status.st_gid != group_id:
            reasons.append(f"group {_group(status.st_gid)}, not the directory's {_group(group_id)}")
        if reasons:
            found.append(Problem(file, _user(status.st_uid), _group(status.st_gid), "; ".join(reasons)))
    return found


def directory_group(path: Path) -> str:
    return _group(path.stat().st_gid)


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
