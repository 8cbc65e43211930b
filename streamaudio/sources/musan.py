"""MUSAN noise: ``musan/noise/<free-sound|sound-bible>/*.wav`` (16 kHz), with
per-folder ANNOTATIONS and LICENSE files. Work units are batches of files."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from .base import Adapter, LayoutError, ProbeError, Reject, clip_row, probe_audio, register_adapter

PARTS = ("free-sound", "sound-bible")
FILES_PER_UNIT = 32


@register_adapter
class MusanNoise(Adapter):
    corpus = "musan"
    kind = "noise"
    license = "CC-BY-4.0 / public domain (per MUSAN LICENSE files)"
    expected_layout = "musan/noise/free-sound/*.wav and/or musan/noise/sound-bible/*.wav"

    def _noise(self, root: Path) -> Path:
        for cand in (root / "musan" / "noise", root / "noise", root):
            if any((cand / p).is_dir() for p in PARTS):
                return cand
        raise LayoutError(f"musan: no noise/free-sound or noise/sound-bible under {root}. "
                          f"Expected layout: {self.expected_layout}")

    def check_layout(self, root: Path, options: dict) -> None:
        self._noise(root)

    def listing_roots(self, root: Path, options: dict) -> list[Path]:
        return [self._noise(root)]

    def units(self, root: Path, options: dict) -> list[list[str]]:
        noise = self._noise(root)
        files = [str(p.relative_to(noise)) for part in PARTS for p in sorted((noise / part).glob("*.wav"))]
        return [files[i:i + FILES_PER_UNIT] for i in range(0, len(files), FILES_PER_UNIT)]

    def scan_unit(self, root: Path, options: dict, unit: list[str]) -> Iterator[dict | Reject]:
        noise = self._noise(root)
        for rel in unit:
            path = noise / rel
            cid = f"musan:{path.stem}"
            try:
                info = probe_audio(path)
            except ProbeError as exc:
                yield Reject(cid, str(exc))
                continue
            yield clip_row(
                id=cid, corpus=self.corpus, kind="noise", path=str(path.resolve()),
                duration_s=info.duration_s, sample_rate=info.sample_rate, caption=path.parent.name,
                license=self.license, split_group=cid,
            )
