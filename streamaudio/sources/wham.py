"""WHAM! noise (wham_noise.zip): ``wham_noise/{tr,cv,tt}/<wsj0-2mix utterance id>.wav``
(2-channel binaural recordings, 16 kHz; written as float WAV) and
``wham_noise/metadata/noise_meta_{tr,cv,tt}.csv`` (plus ``mix_param_meta_*.csv``, not read).

noise_meta columns, per WHAM!'s metadata README: ``utterance_id`` (the file name in the
split folder), ``Noise Band`` (pre-amp level group 0 = very quiet .. 3 = very loud),
``File ID`` (all clips cut from one original recording share it), ``L to R Width (cm)``
(microphone spacing), ``Reverberation Level`` (h/m/l), ``Location ID``, ``Location Day ID``.
Checked against that README, lhotse's ``lhotse/recipes/wham.py`` (``wham_noise/{tr,cv,tt}``,
``*.wav``), the audb WHAM! build script (reads ``metadata/noise_meta_{tr,cv,tt}.csv`` with
those columns, files ``<split>/<utterance_id>``) and WHAM!'s own generation script
(``noise_meta_<split>.csv`` indexed by ``utterance_id``, audio written with subtype FLOAT).

Rows: id ``wham:<split>/<file stem>``; the file's own sample rate and channels (load_clip
mixes channels down); labels = ``noise_band_<n>`` (a level band, not a sound class, so
"labels" is not in provides); attrs = the split and every noise_meta column of the file,
keys in snake case (``noise_band``, ``file_id``, ``l_to_r_width_cm``, ``reverberation_level``,
``location_id``, ``location_day_id``; values as written). split_group: the original
recording (``wham:recording:<File ID>``), so clips cut from one recording never straddle a
split; the clip itself when the CSV has no File ID.

A split without its noise_meta CSV is scanned without metadata. With the CSV, a wav it does
not list is rejected (metadata missing) and a listed utterance without its wav is rejected
(audio file missing). Licence: CC BY-NC 4.0 (WHAM! terms). Work units are batches of files.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Iterator

from .base import Adapter, LayoutError, ProbeError, Reject, clip_row, probe_audio, register_adapter

SPLITS = ("tr", "cv", "tt")
FILES_PER_UNIT = 32


def snake(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


@register_adapter
class Wham(Adapter):
    corpus = "wham"
    kind = "noise"
    license = "CC-BY-NC-4.0"
    version = "1"
    provides = frozenset()
    expected_layout = "wham_noise/{tr,cv,tt}/*.wav and wham_noise/metadata/noise_meta_{tr,cv,tt}.csv"

    def _base(self, root: Path) -> Path:
        for cand in (root / "wham_noise", root):
            if any((cand / s).is_dir() for s in SPLITS):
                return cand
        raise LayoutError(f"wham: no tr/, cv/ or tt/ folder under {root} or {root / 'wham_noise'}. "
                          f"Expected layout: {self.expected_layout}")

    def check_layout(self, root: Path, options: dict) -> None:
        self._base(root)

    def listing_roots(self, root: Path, options: dict) -> list[Path]:
        return [self._base(root)]

    def units(self, root: Path, options: dict) -> list[list[dict]]:
        base = self._base(root)
        recs = []
        for split in SPLITS:
            if (base / split).is_dir():
                recs += self._split(base, split)
        return [recs[i:i + FILES_PER_UNIT] for i in range(0, len(recs), FILES_PER_UNIT)]

    def _split(self, base: Path, split: str) -> list[dict]:
        wavs = {p.name: p for p in (base / split).glob("*.wav")}
        csv_path = base / "metadata" / f"noise_meta_{split}.csv"
        meta: dict[str, dict] | None = None
        bad = []
        if csv_path.is_file():
            meta = {}
            with open(csv_path, newline="", encoding="utf-8", errors="replace") as f:
                for lineno, row in enumerate(csv.DictReader(f), 2):
                    utt = (row.get("utterance_id") or "").strip()
                    if not utt or None in row:
                        bad.append({"id": f"{self.corpus}:{split}/{csv_path.name}:{lineno}",
                                    "error": f"corrupt row in metadata/{csv_path.name} line {lineno}"})
                        continue
                    name = utt if utt.endswith(".wav") else f"{utt}.wav"
                    meta[name] = {snake(k): (v or "").strip() for k, v in row.items() if k and k != "utterance_id"}
        recs = []
        for name in sorted(set(wavs) | set(meta or {})):
            rec = {"id": f"{self.corpus}:{split}/{name.removesuffix('.wav')}", "split": split, "file": f"{split}/{name}"}
            if name not in wavs:
                rec["error"] = f"audio file missing: metadata/{csv_path.name} lists {name} but {split}/{name} does not exist"
            elif meta is not None and name not in meta:
                rec["error"] = f"no row for {name} in metadata/{csv_path.name} (metadata missing)"
            else:
                rec["meta"] = (meta or {}).get(name, {})
            recs.append(rec)
        return recs + bad

    def scan_unit(self, root: Path, options: dict, unit: list[dict]) -> Iterator[dict | Reject]:
        base = self._base(root)
        for rec in unit:
            if "error" in rec:
                yield Reject(rec["id"], rec["error"])
                continue
            path = base / rec["file"]
            try:
                info = probe_audio(path)
            except ProbeError as exc:
                yield Reject(rec["id"], str(exc))
                continue
            meta = rec["meta"]
            band = meta.get("noise_band", "")
            group = f"{self.corpus}:recording:{meta['file_id']}" if meta.get("file_id") else rec["id"]
            attrs = {**meta, "split": rec["split"], "channels": info.channels}
            yield clip_row(
                id=rec["id"], corpus=self.corpus, kind="noise", path=str(path.resolve()),
                duration_s=info.duration_s, sample_rate=info.sample_rate,
                labels=[f"noise_band_{band}"] if band else [], license=self.license, split_group=group,
                attrs=json.dumps(attrs, sort_keys=True),
            )
