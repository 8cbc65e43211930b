"""AudioSet: ``class_labels_indices.csv``, ``*_segments.csv`` (``# `` header lines, then
``YTID, start_seconds, end_seconds, "positive_labels"``) and the downloaded audio as
``audio/**/<YTID>_<start>.{wav,flac}``. The listing (CSVs, the audio index) is cheap and
made once; work units are batches of segments, each probed and measured for its
active span."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

from .base import Adapter, LayoutError, ProbeError, Reject, active_span, clip_row, probe_audio, register_adapter

AUDIO_EXTS = (".wav", ".flac")
SEGMENTS_PER_UNIT = 64


@register_adapter
class AudioSet(Adapter):
    corpus = "audioset"
    kind = "sound"
    license = "CC-BY-4.0 labels; audio under its uploader's YouTube licence"
    provides = frozenset({"labels", "active_span"})
    expected_layout = ("AudioSet/class_labels_indices.csv, AudioSet/<name>_segments.csv and "
                       "AudioSet/audio/**/<YTID>_<start_seconds>.wav|flac")

    def _base(self, root: Path) -> Path:
        return root / "AudioSet" if (root / "AudioSet").is_dir() else root

    def check_layout(self, root: Path, options: dict) -> None:
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

    def listing_roots(self, root: Path, options: dict) -> list[Path]:
        return [self._base(root)]

    def units(self, root: Path, options: dict) -> list[list[dict]]:
        """Segments resolved to files and label names, in batches."""
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
        records = []
        for seg_csv in sorted(base.glob("*_segments.csv")):
            if wanted and seg_csv.name.removesuffix("_segments.csv") not in wanted:
                continue
            with open(seg_csv, newline="", encoding="utf-8") as f:
                lines = (ln for ln in f if not ln.startswith("#"))
                for rec in csv.reader(lines, skipinitialspace=True):
                    if rec:
                        records.append(self._resolve(rec, names, audio, seg_csv.name))
        return [records[i:i + SEGMENTS_PER_UNIT] for i in range(0, len(records), SEGMENTS_PER_UNIT)]

    def _resolve(self, rec: list[str], names: dict, audio: dict, csv_name: str) -> dict:
        try:
            ytid, start = rec[0].strip(), round(float(rec[1]), 3)
            mids = [m.strip() for m in rec[3].split(",") if m.strip()]
        except (IndexError, ValueError):
            return {"id": f"audioset:{csv_name}:{','.join(rec)[:60]}", "error": f"malformed row in {csv_name}"}
        cid = f"audioset:{ytid}_{start:.3f}"
        path = audio.get((ytid, start))
        if path is None:
            return {"id": cid, "error": f"audio file missing: no {ytid}_{start:.3f}.wav|flac under audio/"}
        unknown = [m for m in mids if m not in names]
        if unknown:
            return {"id": cid, "error": f"label id(s) {unknown} not in class_labels_indices.csv"}
        return {"id": cid, "ytid": ytid, "path": str(path.resolve()), "labels": [names[m] for m in mids]}

    def scan_unit(self, root: Path, options: dict, unit: list[dict]) -> Iterator[dict | Reject]:
        for rec in unit:
            if "error" in rec:
                yield Reject(rec["id"], rec["error"])
                continue
            path = Path(rec["path"])
            try:
                info = probe_audio(path)
                a0, a1 = active_span(path)
            except ProbeError as exc:
                yield Reject(rec["id"], str(exc))
                continue
            yield clip_row(
                id=rec["id"], corpus=self.corpus, kind="sound", path=rec["path"],
                duration_s=info.duration_s, sample_rate=info.sample_rate, labels=rec["labels"],
                license=self.license, split_group=f"audioset:{rec['ytid']}", active_start_s=a0, active_end_s=a1,
            )
