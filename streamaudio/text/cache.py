"""A content-addressed on-disk cache: the key is a hash of everything that
determines a result (endpoint model, messages, schema, sampling parameters; or
TTS model, voice and text), so a rebuild never pays for the same call twice."""
from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path


def content_key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


class DiskCache:
    def __init__(self, root: str | Path, namespace: str):
        self.root = Path(root) / namespace
        self.hits = 0
        self.misses = 0

    def _path(self, key: str, suffix: str) -> Path:
        return self.root / key[:2] / f"{key}{suffix}"

    def get_json(self, key: str):
        p = self._path(key, ".json")
        if p.is_file():
            self.hits += 1
            return json.loads(p.read_text())
        self.misses += 1
        return None

    def put_json(self, key: str, value) -> None:
        self._write(self._path(key, ".json"), json.dumps(value, ensure_ascii=False).encode())

    def get_bytes(self, key: str, suffix: str = ".bin") -> bytes | None:
        p = self._path(key, suffix)
        if p.is_file():
            self.hits += 1
            return p.read_bytes()
        self.misses += 1
        return None

    def put_bytes(self, key: str, data: bytes, suffix: str = ".bin") -> Path:
        p = self._path(key, suffix)
        self._write(p, data)
        return p

    @staticmethod
    def _write(p: Path, data: bytes) -> None:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # map_json threads may write one key at once
        tmp.write_bytes(data)
        tmp.replace(p)  # atomic: concurrent writers of one key write the same content
