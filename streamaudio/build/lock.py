"""One build at a time per output folder.

The lock is ``OUT.lock`` beside OUT: an exclusive ``flock`` held for the whole build,
and the owner's host, pid and start time written in it for the message another
build shows. A build that died (kill -9, a lost node) releases its flock with its
process, so a stale lock file never blocks the next build; the file is removed
when a build ends normally.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path


class BuildLocked(RuntimeError):
    pass


class BuildLock:
    def __init__(self, out: Path):
        self.path = Path(out).with_name(Path(out).name + ".lock")
        self._fd: int | None = None

    def __enter__(self) -> "BuildLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                owner = json.loads(os.pread(fd, 4096, 0) or b"{}")
            except ValueError:
                owner = {}
            os.close(fd)
            who = (f"pid {owner.get('pid', '?')} on {owner.get('host', '?')}, since "
                   f"{owner.get('started', '?')}" if owner else "another process")
            raise BuildLocked(f"{self.path.with_suffix('')} is being built by {who} (lock {self.path}). Wait for "
                              "that build to end, or give this one another --out.") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
