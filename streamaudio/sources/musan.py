"""MUSAN noise: ``musan/noise/<free-sound|sound-bible>/*.wav`` (16 kHz), with
per-folder ANNOTATIONS and LICENSE files."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from .base import LayoutError, ProbeError, Reject, clip_row, probe_audio

PARTS = ("free-sound", "sound-bible")


class MusanNoise:
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

    def check_layout(self, root: Path, options: dict | None = None) -> None:
        self._noise(root)

    def scan(self, root: Path, options: dict) -> Iterator[dict | Reject]:
        noise = self._noise(root)
        for part in PARTS:
            for path in sorted((noise / part).glob("*.wav")):
                cid = f"musan:{path.stem}"
                try:
                    info = probe_audio(path)
                except ProbeError as exc:
                    yield Reject(cid, str(exc))
                    continue
                yield clip_row(
                    id=cid, corpus=self.corpus, kind="noise", path=str(path.resolve()),
                    duration_s=info.duration_s, sample_rate=info.sample_rate, caption=part,
                    license=self.license, split_group=cid,
                )
