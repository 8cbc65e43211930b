"""Progress bars (rich) for long steps; silent when asked or when not on a terminal."""
from __future__ import annotations

import sys
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


@contextmanager
def progress_bar(label: str, total: int | None, enabled: bool = True):
    """Yields ``advance()``; total None gives a counter without an end."""
    if not enabled:
        yield lambda n=1: None
        return
    cols = [SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn()]
    with Progress(*cols, transient=not sys.stderr.isatty(), disable=not sys.stderr.isatty()) as p:
        task = p.add_task(label, total=total)
        yield lambda n=1: p.advance(task, n)
    if not sys.stderr.isatty():
        print(f"{label}: done", file=sys.stderr)
