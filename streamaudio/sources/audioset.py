"""AudioSet: ``class_labels_indices.csv``, ``*_segments.csv`` (``# `` header lines, then
``YTID, start_seconds, end_seconds, "positive_labels"``) and the downloaded audio as
``audio/**/<YTID>_<start>.{wav,flac}``."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

from .base import LayoutError, ProbeError, Reject, active_span, clip_row, probe_audio

AUDIO_EXTS = (".wav", ".flac")


class AudioSet:
    corpus = "audioset"
    kind = "sound"
    license = "CC-BY-4.0 labels; audio under its uploader's YouTube licence"
    expected_layout = ("AudioSet/class_labels_indices.csv, AudioSet/<name>_segments.csv and "
                       "AudioSet/audio/**/<YTID>_<start_seconds>.wav|flac")

    def _base(self, root: Path) -> Path:
        return root / "AudioSet" if (root / "AudioSet").is_dir() else root

    def check_layout(self, root: Path, options: dict | None = None) -> None:
        base = self._base(root)
        problems = []
        if not (base / "class_labels_indices.csv").is_file():
            problems.append("class_labels_indices.csv missing")
        if not list(base.glob("*_segments.csv")):
            problems.append("no *_segments.csv")
        if not (base / "audio").is_dir():
            problems.append("no audio/ folder")
        if problems:
            raise LayoutError(f"audioset: {base}: {'; '.join(problems)}. Expected layout: {self.expected_layout}")

    def scan(self, root: Path, options: dict) -> Iterator[dict | Reject]:
        base = self._base(root)
        names = {}
        with open(base / "class_labels_indices.csv", newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                names[row["mid"]] = row["display_name"]
        audio: dict[tuple[str, float], Path] = {}
        for p in sorted((base / "audio").rglob("*")):
            if p.suffix.lower() in AUDIO_EXTS:
                ytid, _, start = p.stem.rpartition("_")
                try:
                    audio[(ytid, round(float(start), 3))] = p
                except ValueError:
                    continue
        wanted = options.get("segments")  # e.g. ["balanced_train", "eval"]
        for seg_csv in sorted(base.glob("*_segments.csv")):
            if wanted and seg_csv.name.removesuffix("_segments.csv") not in wanted:
                continue
            with open(seg_csv, newline="", encoding="utf-8") as f:
                lines = (ln for ln in f if not ln.startswith("#"))
                for rec in csv.reader(lines, skipinitialspace=True):
                    if not rec:
                        continue
                    yield self._segment(rec, names, audio, seg_csv.name)

    def _segment(self, rec, names, audio, csv_name) -> dict | Reject:
        try:
            ytid, start = rec[0].strip(), round(float(rec[1]), 3)
            mids = [m.strip() for m in rec[3].split(",") if m.strip()]
        except (IndexError, ValueError):
            return Reject(f"audioset:{csv_name}:{','.join(rec)[:60]}", f"malformed row in {csv_name}")
        cid = f"audioset:{ytid}_{start:.3f}"
        path = audio.get((ytid, start))
        if path is None:
            return Reject(cid, f"audio file missing: no {ytid}_{start:.3f}.wav|flac under audio/")
        unknown = [m for m in mids if m not in names]
        if unknown:
            return Reject(cid, f"label id(s) {unknown} not in class_labels_indices.csv")
        try:
            info = probe_audio(path)
            a0, a1 = active_span(path)
        except ProbeError as exc:
            return Reject(cid, str(exc))
        return clip_row(
            id=cid, corpus=self.corpus, kind="sound", path=str(path.resolve()),
            duration_s=info.duration_s, sample_rate=info.sample_rate, labels=[names[m] for m in mids],
            license=self.license, split_group=f"audioset:{ytid}", active_start_s=a0, active_end_s=a1,
        )
