"""GammaCorpus v2 (rubenroy/GammaCorpus-v2-10k ... -v2-5m): English multi-turn chat, user prompts with
AI-generated replies.

Layout (checked against the dataset cards and file listings on the Hugging Face hub, e.g.
rubenroy/GammaCorpus-v2-10k: ``gammacorpus-v2-10k.jsonl`` + README.md, license apache-2.0; the
card: "formatted in JSONL, where each line is a JSON object containing a conversation"): JSON Lines,
one dialogue per line::

    {"conversation": [{"input": "<user prompt>", "output": "<AI reply>"}, ...]}

with no id and no other field. Other GammaCorpus collections (v1, CoT, QA, Polylingo) have other
shapes; a v1 file whose lines have the same ``conversation`` list reads the same way.

Rows: one per exchange, in order: ``text`` = ``input``, ``response`` = ``output``, ``dialogue`` =
"gammacorpus:<file path without suffix>/<line number>" (the line is the only stable id a line has),
``turn`` = 0, 1, ...; ``language`` "en" (the card's only language); ``attrs``: any other field a line
has. Rejects: an exchange with an empty or missing input / output "gammacorpus:<dialogue id>:<turn>"
(the dialogue's other turns are kept, with their own turn numbers); a dialogue with no usable turn or
no ``conversation`` list "gammacorpus:<dialogue id>"; a line that is not JSON "gammacorpus:<file>:<line>".
``seen`` counts turns, except that a line that yields no row counts once.

Work units: a file per ~64 MB byte range (see ultrachat.jsonl_units; GammaCorpus-v2-5m is one file of
several GB).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from .base import Adapter, LayoutError, Reject, register_adapter
from ._chat import chat_row, dialogue_items, jsonl_lines, jsonl_units, parse_json, rel_name, rel_stem, unit_bytes


@register_adapter
class GammaCorpus(Adapter):
    corpus = "gammacorpus"
    kind = "text"
    license = "Apache-2.0"
    version = "1"
    provides = frozenset({"text", "response", "dialogue"})
    expected_layout = ("*.jsonl files (e.g. gammacorpus-v2-1m.jsonl), "
                       "one {\"conversation\": [{input, output}...]} per line")

    def _files(self, root: Path) -> list[Path]:
        files = ([root] if root.suffix == ".jsonl" else []) if root.is_file() else sorted(root.rglob("*.jsonl"))
        if not files:
            raise LayoutError(f"gammacorpus: no .jsonl files under {root}. Expected layout: {self.expected_layout}")
        return files

    def check_layout(self, root: Path, options: dict) -> None:
        self._files(root)

    def listing_roots(self, root: Path, options: dict) -> list[Path]:
        return self._files(root)

    def units(self, root: Path, options: dict) -> list[list]:
        return jsonl_units(self._files(root), unit_bytes(options))

    def scan_unit(self, root: Path, options: dict, unit: list) -> Iterator[dict | Reject]:
        path = Path(unit[0])
        name, stem = rel_name(path, root), rel_stem(path, root)
        for lineno, raw in jsonl_lines(unit):
            obj, why = parse_json(raw)
            if why:
                yield Reject(f"gammacorpus:{name}:{lineno}", why)
            elif not isinstance(obj, dict):
                yield Reject(f"gammacorpus:{name}:{lineno}", "line is not a JSON object")
            else:
                yield from self._dialogue(obj, f"{stem}/{lineno}")

    def _dialogue(self, obj: dict, did: str) -> list:
        conv = obj.get("conversation")
        if not isinstance(conv, list):
            return [Reject(f"gammacorpus:{did}", "missing 'conversation' list" if conv is None
                           else f"'conversation' is not a list ({type(conv).__name__})")]
        turns: list[tuple] = []
        for t, ex in enumerate(conv):
            if not isinstance(ex, dict):
                turns.append((t, None, None, "exchange is not an object with input and output"))
            else:
                # a missing output is "no reply"; a missing input is an empty message
                turns.append((t, ex.get("input", ""), ex.get("output"), ""))
        attrs: dict[str, Any] = {k: v for k, v in obj.items() if k != "conversation"}
        return dialogue_items(self.corpus, did, turns,
                              lambda t, user, reply: chat_row(self, did, t, user, reply, "en", attrs))
