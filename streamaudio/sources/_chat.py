"""What the chat adapters (ultrachat, magpie, moss, gammacorpus) share: JSON Lines split into
byte-range work units, message pairing, and one row (or reject) per turn of a dialogue."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .base import Adapter, Reject, clip_row

UNIT_MB = 64.0  # a JSON Lines file bigger than this is split into byte ranges of about this size
READ_BLOCK = 16 * 2**20


def unit_bytes(options: dict) -> int:
    return max(1, int(float(options.get("unit_mb", UNIT_MB)) * 2**20))


def jsonl_units(files: Iterable[Path], max_bytes: int) -> list[list]:
    """Work units ``[path, start, end, first_line]`` over JSON Lines files: a file up to
    ``max_bytes`` is one unit (end -1: to the end); a bigger one is cut at line starts about
    every ``max_bytes``, and its lines are counted (one sequential read, no parsing) so every
    unit knows the number of its first line."""
    units: list[list] = []
    for path in files:
        size = path.stat().st_size
        if size <= max_bytes:
            units.append([str(path), 0, -1, 1])
            continue
        cuts = [0]
        with open(path, "rb") as f:
            at = max_bytes
            while at < size:
                f.seek(at - 1)
                f.readline()  # to the start of the first line at or after `at`
                p = f.tell()
                if p >= size:
                    break
                cuts.append(p)
                at = p + max_bytes
            line = 1
            f.seek(0)
            for k, start in enumerate(cuts):
                end = cuts[k + 1] if k + 1 < len(cuts) else -1
                units.append([str(path), start, end, line])
                if end < 0:
                    break
                left = end - start
                while left > 0:
                    block = f.read(min(left, READ_BLOCK))
                    if not block:
                        break
                    line += block.count(b"\n")
                    left -= len(block)
    return units


def jsonl_lines(unit: list) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) of the non-blank lines of one unit, streamed."""
    path, start, end, line = unit
    with open(path, "rb") as f:
        f.seek(start)
        pos = start
        for raw in f:
            if 0 <= end <= pos:
                break
            pos += len(raw)
            if raw.strip():
                yield line, raw
            line += 1


def parse_json(raw: bytes) -> tuple[Any, str]:
    """A JSON Lines line -> (value, "") or (None, the reject reason)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None, "line is not valid UTF-8"
    try:
        return json.loads(text), ""
    except json.JSONDecodeError as exc:
        return None, f"line is not JSON ({exc.msg})"


def turn_problem(user: Any, reply: Any) -> str:
    """Why a (user message, reply) pair cannot be a row; "" when it can."""
    if user is None:
        return "no user message before this assistant reply"
    if not isinstance(user, str):
        return f"user message is not text ({type(user).__name__})"
    if not user.strip():
        return "empty user message"
    if reply is None:
        return "no assistant reply"
    if not isinstance(reply, str):
        return f"assistant reply is not text ({type(reply).__name__})"
    if not reply.strip():
        return "empty assistant reply"
    return ""


def pair_messages(messages: Iterable[tuple[str | None, Any]]) -> tuple[list[str], list[tuple]]:
    """(role, content) in order, roles "system", "user", "assistant" (anything else is a turn's
    fault) -> (system texts, turns ``(turn, user, reply, why)``): each user message opens a turn
    and the next assistant message is its reply."""
    systems: list[str] = []
    turns: list[list] = []
    for role, content in messages:
        if role == "system":
            if isinstance(content, str) and content.strip():
                systems.append(content.strip())
        elif role == "user":
            turns.append([content, None, ""])
        elif role == "assistant" and turns and turns[-1][1] is None and not turns[-1][2] and turns[-1][0] is not None:
            turns[-1][1] = content
        elif role == "assistant":
            turns.append([None, content, ""])
        else:
            turns.append([None, None, "message is not an object with a role" if role is None
                          else f"message with unknown role {role!r}"])
    return systems, [(i, u, r, why) for i, (u, r, why) in enumerate(turns)]


def dialogue_items(corpus: str, did: str, turns: list[tuple], make_row: Callable[[int, str, str], dict]) -> list:
    """A dialogue's rows and rejects, in turn order. ``turns``: ``(turn, user, reply, why)`` with
    ``why`` a fault already found ("" if none); ``make_row(turn, user, reply)`` builds a row from
    the stripped texts. A bad turn is a reject "<corpus>:<did>:<turn>"; a dialogue with no usable
    turn is one reject "<corpus>:<did>"."""
    if not turns:
        return [Reject(f"{corpus}:{did}", "empty conversation: no messages")]
    out: list = []
    bad: list[tuple[int, str]] = []
    for t, user, reply, why in turns:
        why = why or turn_problem(user, reply)
        if why:
            bad.append((t, why))
            out.append(Reject(f"{corpus}:{did}:{t}", why))
        else:
            out.append(make_row(t, user.strip(), reply.strip()))
    if len(bad) == len(turns):
        why = bad[0][1] if len(bad) == 1 else "no usable turn (" + "; ".join(f"turn {t}: {w}" for t, w in bad) + ")"
        return [Reject(f"{corpus}:{did}", why)]
    return out


def chat_row(adapter: Adapter, did: str, turn: int, user: str, reply: str, language: str = "en",
             attrs: dict | None = None, license: str | None = None) -> dict:
    """One turn of a dialogue as a text clip row."""
    dialogue = f"{adapter.corpus}:{did}"
    return clip_row(id=f"{dialogue}:{turn}", corpus=adapter.corpus, kind="text", language=language, text=user,
                    response=reply, license=license or adapter.license, split_group=dialogue, dialogue=dialogue,
                    turn=int(turn), attrs=json.dumps(attrs or {}, ensure_ascii=False, sort_keys=True))


def rel_stem(path: Path, root: Path) -> str:
    """A file's path under the corpus root without its suffix ("data/train_0"): dialogue ids
    built from it stay unique when several files number their conversations from 1."""
    rel = path.relative_to(root) if path != root and root in path.parents else Path(path.name)
    return rel.with_suffix("").as_posix()


def rel_name(path: Path, root: Path) -> str:
    return (path.relative_to(root) if path != root and root in path.parents else Path(path.name)).as_posix()
