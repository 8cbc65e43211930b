"""UltraChat: JSON Lines of multi-turn conversations, in either of its two published shapes:

* ``{"prompt", "prompt_id", "messages": [{"role": "user"|"assistant", "content"}...]}``, the
  HuggingFaceH4/ultrachat_200k shape (its card: "each entry using the following schema: prompt,
  messages [{content, role}]"; the hub stores it as Parquet, so it is read here once exported
  to JSON Lines, e.g. ``Dataset.to_json``);
* ``{"id", "data": [user, assistant, user, assistant, ...]}``, the original thunlp/UltraChat
  release (train_*.jsonl).

One row per turn, in order: ``text`` = the user's message of that turn, ``response`` = the
assistant's reply to it, ``dialogue`` = "ultrachat:<prompt_id or id>", ``turn`` = 0, 1, 2, ...,
``id`` = "<dialogue>:<turn>". A turn whose user message is empty or that has no (or an empty)
reply is a reject "ultrachat:<dialogue id>:<turn>"; the dialogue's other turns are kept with
their own turn numbers (a gap shows where the rejected turn was). A dialogue with no usable turn
is one reject "ultrachat:<dialogue id>" (its reason names each turn's fault, or is that fault
when it has one turn); a line that is not JSON is a reject "ultrachat:<file>:<line>".
``seen`` therefore counts turns, except that a line that yields no row counts once.

Work units: one per file, or per ~64 MB byte range of a bigger file (option ``unit_mb``); the
listing counts the lines of a file it splits, so reject ids keep their line numbers.

The helpers it shares with the other chat adapters are in ``_chat.py``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ._chat import chat_row, dialogue_items, jsonl_lines, jsonl_units, pair_messages, parse_json, unit_bytes
from .base import Adapter, LayoutError, Reject, register_adapter

# ---------------------------------------------------------------- UltraChat
@register_adapter
class UltraChat(Adapter):
    corpus = "ultrachat"
    kind = "text"
    license = "MIT"
    version = "2"  # 2: one row per turn of a dialogue (was: the first exchange only)
    provides = frozenset({"text", "response", "dialogue"})
    expected_layout = ("a folder of *.jsonl files, one conversation per line with 'messages' "
                       "[{role, content}...] (ultrachat_200k) or 'data' [user, assistant, ...] (original release)")

    def _files(self, root: Path) -> list[Path]:
        files = [root] if root.is_file() else sorted(root.rglob("*.jsonl"))
        if not files:
            raise LayoutError(f"ultrachat: no .jsonl files under {root}. Expected layout: {self.expected_layout}")
        return files

    def check_layout(self, root: Path, options: dict) -> None:
        self._files(root)

    def listing_roots(self, root: Path, options: dict) -> list[Path]:
        return self._files(root)

    def units(self, root: Path, options: dict) -> list[list]:
        return jsonl_units(self._files(root), unit_bytes(options))

    def scan_unit(self, root: Path, options: dict, unit: list) -> Iterator[dict | Reject]:
        name = Path(unit[0]).name
        for lineno, raw in jsonl_lines(unit):
            yield from self._line(raw, f"{name}:{lineno}")

    def _line(self, raw: bytes, where: str) -> list:
        obj, why = parse_json(raw)
        if why:
            return [Reject(f"ultrachat:{where}", why)]
        if not isinstance(obj, dict):
            return [Reject(f"ultrachat:{where}", "line is not a JSON object")]
        did = str(obj.get("prompt_id") or obj.get("id") or where)
        msgs = obj.get("messages")
        if isinstance(msgs, list):
            systems, turns = pair_messages(
                (m.get("role"), m.get("content")) if isinstance(m, dict) else (None, None) for m in msgs)
        elif isinstance(obj.get("data"), list):
            data = obj["data"]
            systems, turns = [], [(i, data[2 * i], data[2 * i + 1] if 2 * i + 1 < len(data) else None, "")
                                  for i in range((len(data) + 1) // 2)]
        else:
            return [Reject(f"ultrachat:{did}", "no 'messages' or 'data' list (missing conversation)")]
        attrs = {"system_prompt": "\n".join(systems)} if systems else {}
        return dialogue_items(self.corpus, did, turns,
                              lambda t, user, reply: chat_row(self, did, t, user, reply, "en", attrs))
