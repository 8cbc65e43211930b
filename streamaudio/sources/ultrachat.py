"""UltraChat: JSON Lines of conversations, either ``{"messages": [{"role", "content"}...]}``
(HuggingFaceH4/ultrachat_200k) or ``{"id", "data": [user, assistant, ...]}`` (the original
release). Text only: the first user message and the first assistant reply are kept.
One work unit per file."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from .base import Adapter, LayoutError, Reject, clip_row, register_adapter


@register_adapter
class UltraChat(Adapter):
    corpus = "ultrachat"
    kind = "text"
    license = "MIT"
    provides = frozenset({"text", "response"})
    expected_layout = "a folder of *.jsonl files, one conversation per line with 'messages' or 'data'"

    def _files(self, root: Path) -> list[Path]:
        files = [root] if root.is_file() else sorted(root.rglob("*.jsonl"))
        if not files:
            raise LayoutError(f"ultrachat: no .jsonl files under {root}. Expected layout: {self.expected_layout}")
        return files

    def check_layout(self, root: Path, options: dict) -> None:
        self._files(root)

    def listing_roots(self, root: Path, options: dict) -> list[Path]:
        return self._files(root)

    def units(self, root: Path, options: dict) -> list[str]:
        return [str(p) for p in self._files(root)]

    def scan_unit(self, root: Path, options: dict, unit: str) -> Iterator[dict | Reject]:
        path = Path(unit)
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                if raw.strip():
                    yield self._line(raw, f"{path.name}:{lineno}")

    def _line(self, raw: bytes, where: str) -> dict | Reject:
        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return Reject(f"ultrachat:{where}", "line is not valid UTF-8")
        except json.JSONDecodeError as exc:
            return Reject(f"ultrachat:{where}", f"line is not JSON ({exc.msg})")
        if not isinstance(obj, dict):
            return Reject(f"ultrachat:{where}", "line is not a JSON object")
        cid = f"ultrachat:{obj.get('prompt_id') or obj.get('id') or where}"
        if isinstance(obj.get("messages"), list):
            user = next((m.get("content", "") for m in obj["messages"] if isinstance(m, dict) and m.get("role") == "user"), None)
            reply = next((m.get("content", "") for m in obj["messages"] if isinstance(m, dict) and m.get("role") == "assistant"), None)
        elif isinstance(obj.get("data"), list):
            user = obj["data"][0] if obj["data"] else None
            reply = obj["data"][1] if len(obj["data"]) > 1 else None
        else:
            return Reject(cid, "no 'messages' or 'data' field")
        if not isinstance(user, str) or not user.strip():
            return Reject(cid, "empty user message")
        if not isinstance(reply, str) or not reply.strip():
            return Reject(cid, "no assistant reply")
        return clip_row(id=cid, corpus=self.corpus, kind="text", language="en", text=user.strip(),
                        response=reply.strip(), license=self.license, split_group=cid)
