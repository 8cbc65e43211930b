"""MOSS SFT data (Fudan OpenMOSS): Chinese and English multi-turn dialogues written for MOSS.

Layouts read (checked against the OpenMOSS/MOSS repository's SFT_data samples and README,
the fnlp/moss-003-sft-data files, and moss-002/003 readers in public training code, e.g.
safe-rlhf's MOSS002SFT/MOSS003SFT and xtuner's MOSSSFTDataset):

* moss-003 (fnlp/moss-003-sft-data, unzipped: ``moss-003-sft-no-tools.jsonl``,
  ``moss-003-sft-with-tools-no-text2image.jsonl``): JSON Lines, one dialogue per line::

    {"conversation_id": 1, "meta_instruction": "You are an AI assistant whose name is MOSS...",
     "num_turns": 2, "category": "harmless_zh",
     "chat": {"turn_1": {"Human": "<|Human|>: ...<eoh>\\n",
                         "Inner Thoughts": "<|Inner Thoughts|>: ...<eot>\\n",    (with-tools data)
                         "Commands": "<|Commands|>: Search(\\"...\\")<eoc>\\n",
                         "Tool Responses": "<|Results|>:\\n...<eor>\\n",
                         "MOSS": "<|MOSS|>: ...<sup><|1|></sup><eom>\\n"},
              "turn_2": {...}}}

* the same object alone in a ``*.json`` file (the repository's SFT_data/conversations/... samples);
* moss-002 (fnlp/moss-002-sft-data: ``{en,zh}_{helpfulness,harmlessness,honesty}.json``): a JSON
  array of ``{"plain_text": "[Human]: ...<eoh> [MOSS]: ...<eoa> [Human]: ..."}``, streamed
  element by element (never loaded whole).

The zipped downloads (``*.jsonl.zip``) must be unzipped first. Firefly's re-export
(YeungNLP/moss-003-sft-data, ``conversation: [{human, assistant}]``) is not this layout.

Rows: one per turn, in order: ``text`` = what the human said, ``response`` = what MOSS said (role
markers, end markers ``<eoh>``/``<eom>``/``<eoa>`` and citation marks ``<sup><|n|></sup>`` removed;
inner thoughts, commands and tool results are not speech and are dropped), ``dialogue`` =
"moss:<file path without suffix>/<conversation_id>" (files number their conversations from 1
each, so the file is part of the id; moss-002 elements are numbered from 1), ``turn`` = n - 1 for
``turn_n``. ``language``: "zh" when the human's message has at least as many CJK characters as
Latin words, else "en"; a message with neither takes its dialogue's majority. ``attrs``:
``category`` (or the moss-002 file as ``subset``), ``system_prompt`` (the meta instruction), and
for a turn that called a tool, ``commands``.

Rejects: a turn whose human text or MOSS reply is empty or missing "moss:<dialogue id>:<turn>"
(the dialogue's other turns are kept); a dialogue with no usable turn, or without a ``chat``
object, "moss:<dialogue id>"; a line that is not JSON "moss:<file>:<line>" (moss-002: element
number; a broken array ends its file with one reject). ``seen`` counts turns, except that a line
that yields no row counts once.

Work units: a JSON Lines file per ~64 MB byte range (see ultrachat.jsonl_units); a .json file whole.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

from .base import Adapter, LayoutError, Reject, register_adapter
from ._chat import (chat_row, dialogue_items, jsonl_lines, jsonl_units, pair_messages, parse_json, rel_name,
                        rel_stem, unit_bytes)

ROLE_MARK = re.compile(r"^\s*<\|(?:Human|MOSS|Inner Thoughts|Commands|Results)\|>:\s*")
END_MARK = re.compile(r"\s*<(?:eoh|eom|eot|eoc|eor|eoa)>\s*$")
CITATION = re.compile(r"<sup>\s*<\|\d+\|>\s*</sup>")
TURN_KEY = re.compile(r"^turn_(\d+)$")
PLAIN_TURN = re.compile(r"\s*\[(Human|MOSS)\]:\s*(.*?)\s*(<eoh>|<eoa>)", re.DOTALL)
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")
LATIN_WORD = re.compile(r"[A-Za-z]+")
MAX_ELEMENT_CHARS = 64 * 2**20  # a moss-002 array element that does not parse within this is a broken file


def clean(text: Any) -> Any:
    """A MOSS field without its role marker, end marker and citation marks (non-text as it is)."""
    if not isinstance(text, str):
        return text
    text = END_MARK.sub("", ROLE_MARK.sub("", text, count=1))
    return CITATION.sub("", text).strip()


def detect_language(text: str) -> str:
    """ "zh", "en", or "" when the text has neither CJK characters nor Latin words."""
    cjk, latin = len(CJK.findall(text)), len(LATIN_WORD.findall(text))
    if not cjk and not latin:
        return ""
    return "zh" if cjk >= latin else "en"


@register_adapter
class Moss(Adapter):
    corpus = "moss"
    kind = "text"
    # the MOSS repository: "data under CC BY-NC 4.0" (the fnlp hub card says cc-by-4.0; the stricter holds)
    license = "CC-BY-NC-4.0"
    version = "1"
    provides = frozenset({"text", "response", "dialogue"})
    expected_layout = ("moss-003-sft-data: *.jsonl (unzipped), one dialogue per line {conversation_id, "
                       "meta_instruction, chat: {turn_1: {Human, MOSS, ...}}}; or single-dialogue *.json files; "
                       "or moss-002-sft-data *.json arrays of {plain_text}")

    def _files(self, root: Path) -> list[Path]:
        if root.is_file():
            files = [root] if root.suffix in (".jsonl", ".json") else []
        else:
            files = sorted(p for p in root.rglob("*") if p.suffix in (".jsonl", ".json") and p.is_file())
        if not files:
            zips = sorted(p.name for p in root.rglob("*.zip")) if root.is_dir() else []
            hint = f" (unzip {', '.join(zips[:3])} first)" if zips else ""
            raise LayoutError(f"moss: no .jsonl or .json files under {root}{hint}. "
                              f"Expected layout: {self.expected_layout}")
        return files

    def check_layout(self, root: Path, options: dict) -> None:
        self._files(root)

    def listing_roots(self, root: Path, options: dict) -> list[Path]:
        return self._files(root)

    def units(self, root: Path, options: dict) -> list[list]:
        units: list[list] = []
        for path in self._files(root):
            if path.suffix == ".jsonl":
                units += jsonl_units([path], unit_bytes(options))
            else:
                units.append([str(path), 0, -1, 0])  # a .json file: whole
        return units

    def scan_unit(self, root: Path, options: dict, unit: list) -> Iterator[dict | Reject]:
        path = Path(unit[0])
        name, stem = rel_name(path, root), rel_stem(path, root)
        if path.suffix == ".jsonl":
            for lineno, raw in jsonl_lines(unit):
                obj, why = parse_json(raw)
                if why:
                    yield Reject(f"moss:{name}:{lineno}", why)
                elif not isinstance(obj, dict):
                    yield Reject(f"moss:{name}:{lineno}", "line is not a JSON object")
                else:
                    yield from self._moss003(obj, stem, f"{stem}/{lineno}")
            return
        with open(path, encoding="utf-8") as f:
            head = f.read(4096).lstrip("\ufeff \t\r\n")[:1]
        if head == "{":
            try:
                obj = json.loads(path.read_text(encoding="utf-8-sig"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                yield Reject(f"moss:{name}", f"file is not JSON ({' '.join(str(exc).split())[:120]})")
                return
            yield from self._moss003(obj, stem, stem)
        elif head == "[":
            yield from self._moss002(path, name, stem)
        else:
            yield Reject(f"moss:{name}", "file is not JSON (neither an object nor an array)")

    # -------------------------------------------------------------- moss-003: {"chat": {"turn_n": {...}}}
    def _moss003(self, obj: dict, stem: str, fallback: str) -> list:
        cid = obj.get("conversation_id")
        did = f"{stem}/{cid}" if cid not in (None, "") else fallback
        chat = obj.get("chat")
        if not isinstance(chat, dict):
            return [Reject(f"moss:{did}", "missing 'chat' field" if chat is None else "'chat' is not an object")]
        keyed = sorted((int(m.group(1)), v) for k, v in chat.items() if (m := TURN_KEY.match(str(k))))
        turns, commands = [], {}
        for n, turn in keyed:
            if not isinstance(turn, dict):
                turns.append((n - 1, None, None, f"turn_{n} is not an object"))
                continue
            turns.append((n - 1, clean(turn.get("Human")), clean(turn.get("MOSS")), ""))
            cmd = clean(turn.get("Commands"))
            if isinstance(cmd, str) and cmd and cmd != "None":
                commands[n - 1] = cmd
        attrs: dict[str, Any] = {}
        if obj.get("category"):
            attrs["category"] = obj["category"]
        if isinstance(obj.get("meta_instruction"), str) and obj["meta_instruction"].strip():
            attrs["system_prompt"] = obj["meta_instruction"].strip()
        return self._items(did, turns, attrs, commands)

    # -------------------------------------------------------------- moss-002: [{"plain_text": ...}, ...]
    def _moss002(self, path: Path, name: str, stem: str) -> Iterator[dict | Reject]:
        n = 0
        try:
            for n, item in enumerate(_iter_json_array(path), 1):
                did = f"{stem}/{n}"
                if not isinstance(item, dict):
                    yield Reject(f"moss:{name}:{n}", "array element is not a JSON object")
                    continue
                text = item.get("plain_text")
                if not isinstance(text, str):
                    yield Reject(f"moss:{did}", "missing 'plain_text' field")
                    continue
                messages, rest = [], text
                while rest.strip():
                    m = PLAIN_TURN.match(rest)
                    if m is None:
                        break
                    messages.append(("user" if m.group(1) == "Human" else "assistant", m.group(2)))
                    rest = rest[m.end():]
                if rest.strip():
                    yield Reject(f"moss:{did}", f"plain_text is not '[Human]: ...<eoh> [MOSS]: ...<eoa>' "
                                                f"after {len(messages)} messages")
                    continue
                _, turns = pair_messages(messages)
                attrs = {"subset": path.stem, **{k: v for k, v in item.items()
                                                 if k != "plain_text" and isinstance(v, (str, int, float, bool))}}
                yield from self._items(did, turns, attrs, {})
        except (ValueError, UnicodeDecodeError) as exc:  # a broken array: nothing after it can be found
            what = "not valid UTF-8" if isinstance(exc, UnicodeDecodeError) else \
                f"not JSON ({exc.msg if isinstance(exc, json.JSONDecodeError) else exc})"
            yield Reject(f"moss:{name}:{n + 1}", f"array element is {what}; the rest of the file is unreadable")

    def _items(self, did: str, turns: list[tuple], attrs: dict, commands: dict) -> list:
        langs = [detect_language(u) for _, u, _, _ in turns if isinstance(u, str)]
        majority = "zh" if langs.count("zh") > langs.count("en") else "en"

        def row(t: int, user: str, reply: str) -> dict:
            extra = {"commands": commands[t]} if t in commands else {}
            return chat_row(self, did, t, user, reply, detect_language(user) or majority, {**attrs, **extra})

        return dialogue_items(self.corpus, did, turns, row)


def _iter_json_array(path: Path, chunk: int = 2**20) -> Iterator[Any]:
    """The elements of a top-level JSON array, decoded one at a time from a streamed file."""
    dec = json.JSONDecoder()
    with open(path, encoding="utf-8-sig") as f:
        buf, pos, eof, opened = "", 0, False, False
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n,":
                pos += 1
            if pos >= len(buf) and not eof:
                buf, pos = f.read(chunk), 0
                eof = not buf
                continue
            if pos >= len(buf):
                raise ValueError("the array is not closed")
            if not opened:
                if buf[pos] != "[":
                    raise ValueError("the file is not a JSON array")
                opened, pos = True, pos + 1
                continue
            if buf[pos] == "]":
                return
            try:
                obj, end = dec.raw_decode(buf, pos)
            except json.JSONDecodeError:
                if eof or len(buf) - pos > MAX_ELEMENT_CHARS:
                    raise
                more = f.read(chunk)
                eof = not more
                buf, pos = buf[pos:] + more, 0
                continue
            if end == len(buf) and not eof:  # a number may continue in the next chunk
                more = f.read(chunk)
                if more:
                    buf, pos = buf[pos:] + more, 0
                    continue
                eof = True
            yield obj
            pos = end
