"""Magpie (Magpie-Align/Magpie-*, e.g. Magpie-Pro-300K-Filtered, Magpie-Llama-3.1-Pro-MT-300K-Filtered):
instruction data that aligned LLMs wrote for themselves, single- and multi-turn ("MT").

Layout, as published on the Hugging Face hub (checked against the dataset cards' ``dataset_info``
and file listings, Magpie-Pro-300K-Filtered: data/train-0000{0,1,2}-of-00003.parquet;
Magpie-Llama-3.1-Pro-MT-300K-Filtered: ``data_files: data/train-*``): Parquet files
``data/train-*-of-*.parquet``, one conversation per row, with ``conversations``
(list of struct ``{from: "human"|"gpt", value}``, the MT sets holding 2 exchanges) and per-item
facts: ``uuid``, ``model``, ``task_category``, ``other_task_category``, ``difficulty``,
``input_quality``, ``intent``, ``knowledge``, ``llama_guard_2``, ``instruct_reward``,
``reward_model``, ``language`` (e.g. "EN"), plus text duplicates of the first exchanges
(``instruction``, ``response``, ``instruction_2``, ...) that are not read. The same rows as JSON
Lines (``*.jsonl``, e.g. the magpie repository's generation output) are read too. Some sets
(Magpie-Reasoning-V2) name the id ``conversation_id``; both are used.

Rows: one per turn (a human message and the gpt reply after it), in order: ``text``, ``response``,
``dialogue`` = "magpie:<uuid>", ``turn`` = 0, 1, ...; ``language`` from the row's ``language``
(lower-cased; "en" when absent); ``attrs``: the facts above that the row has (and
``system_prompt`` when a conversation opens with a "system" message). ``license``: the catalog
option ``license`` if given, else "llama3.1" for rows whose ``model`` is a Llama 3.1, else the
adapter's "llama3" (Magpie-Pro's card; other Magpie sets should pass their card's license).

Rejects: a turn with an empty message or no reply "magpie:<uuid>:<turn>" (the dialogue's other
turns are kept, with their own turn numbers); a conversation with no usable turn, or whose
``conversations`` is missing / not a list, "magpie:<uuid>"; a JSON Lines line that is not JSON
"magpie:<file>:<line>". Rows without an id use "<file>/<row>" (Parquet rows counted from 0, as the
hub viewer does; JSON Lines by line number). ``seen`` counts turns, except that a conversation
that yields no row counts once.

Work units: one per Parquet row group (read with ``iter_batches``, only the columns used), or
per JSON Lines byte range (see ultrachat.jsonl_units).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import pyarrow.parquet as pq

from .base import Adapter, LayoutError, Reject, register_adapter
from ._chat import (chat_row, dialogue_items, jsonl_lines, jsonl_units, pair_messages, parse_json, rel_name,
                        rel_stem, unit_bytes)

FACTS = ("uuid", "conversation_id", "model", "task_category", "other_task_category", "difficulty", "input_quality",
         "intent", "knowledge", "llama_guard_2", "instruct_reward", "reward_model", "language")
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
BATCH = 1024


@register_adapter
class Magpie(Adapter):
    corpus = "magpie"
    kind = "text"
    license = "llama3"
    version = "1"
    provides = frozenset({"text", "response", "dialogue"})
    expected_layout = ("a Magpie dataset folder: data/train-*-of-*.parquet (Hugging Face layout) or *.jsonl, "
                       "one conversation per row with 'conversations' [{from: human|gpt, value}...]")

    def _files(self, root: Path) -> list[Path]:
        if root.is_file():
            files = [root] if root.suffix in (".parquet", ".jsonl") else []
        else:
            files = sorted(p for p in root.rglob("*") if p.suffix in (".parquet", ".jsonl") and p.is_file())
        if not files:
            raise LayoutError(f"magpie: no .parquet or .jsonl files under {root}. "
                              f"Expected layout: {self.expected_layout}")
        parquet = [p for p in files if p.suffix == ".parquet"]
        if parquet and not any("conversations" in pq.read_schema(p).names for p in parquet):
            raise LayoutError(f"magpie: the Parquet files under {root} have no 'conversations' column. "
                              f"Expected layout: {self.expected_layout}")
        return files

    def check_layout(self, root: Path, options: dict) -> None:
        self._files(root)

    def listing_roots(self, root: Path, options: dict) -> list[Path]:
        return self._files(root)

    def units(self, root: Path, options: dict) -> list[list]:
        units: list[list] = []
        files = self._files(root)
        for path in files:
            if path.suffix == ".parquet":
                meta = pq.ParquetFile(path).metadata
                first = 0
                for rg in range(meta.num_row_groups):
                    units.append([str(path), "row_group", rg, first])
                    first += meta.row_group(rg).num_rows
            else:
                units += jsonl_units([path], unit_bytes(options))
        return units

    def scan_unit(self, root: Path, options: dict, unit: list) -> Iterator[dict | Reject]:
        path = Path(unit[0])
        name, stem = rel_name(path, root), rel_stem(path, root)
        if unit[1] == "row_group":
            pf = pq.ParquetFile(path)
            cols = [c for c in pf.schema_arrow.names if c == "conversations" or c in FACTS]
            row = unit[3]
            for batch in pf.iter_batches(batch_size=BATCH, row_groups=[unit[2]], columns=cols, use_threads=False):
                for rec in batch.to_pylist():
                    yield from self._record(rec, f"{stem}/{row}", options)
                    row += 1
            return
        for lineno, raw in jsonl_lines(unit):
            rec, why = parse_json(raw)
            if why:
                yield Reject(f"magpie:{name}:{lineno}", why)
            elif not isinstance(rec, dict):
                yield Reject(f"magpie:{name}:{lineno}", "line is not a JSON object")
            else:
                yield from self._record(rec, f"{stem}/{lineno}", options)

    def _record(self, rec: dict, fallback_id: str, options: dict) -> list:
        did = str(rec.get("uuid") or rec.get("conversation_id") or fallback_id)
        conv = rec.get("conversations")
        if not isinstance(conv, list):
            got = "null" if conv is None else type(conv).__name__
            return [Reject(f"magpie:{did}", f"'conversations' is missing or not a list (got {got})")]
        systems, turns = pair_messages(
            (ROLES.get(m.get("from"), m.get("from")), m.get("value")) if isinstance(m, dict) else (None, None)
            for m in conv)
        attrs: dict[str, Any] = {k: rec[k] for k in FACTS if rec.get(k) is not None}
        if systems:
            attrs["system_prompt"] = "\n".join(systems)
        lang = rec.get("language")
        language = lang.lower() if isinstance(lang, str) and len(lang) in (2, 3) and lang.isalpha() else "en"
        license = options.get("license") or _license_of(rec.get("model")) or self.license
        return dialogue_items(self.corpus, did, turns,
                              lambda t, user, reply: chat_row(self, did, t, user, reply, language, attrs, license))


def _license_of(model: Any) -> str:
    """The license a Magpie row inherits from the model that wrote it, where it is known."""
    m = re.search(r"llama[-_ ]?3(?:\.(\d+))?", str(model or "").lower())
    return "" if m is None else "llama3" + (f".{m.group(1)}" if m.group(1) else "")
