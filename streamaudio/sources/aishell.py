"""AISHELL-1 (OpenSLR 33): 178 hours of Mandarin read speech, 400 speakers, 16 kHz.

Published layout (``data_aishell.tgz``), as lhotse's ``lhotse/recipes/aishell.py`` and the
Kaldi/WeNet ``aishell_data_prep.sh`` read it, and as the OpenSLR / Hugging Face
(AISHELL/AISHELL-1) listings show::

    data_aishell/transcript/aishell_transcript_v0.8.txt   "<utt id> <space-separated words>" lines
    data_aishell/wav/<train|dev|test>/<speaker>/<utt id>.wav
        e.g. wav/train/S0002/BAC009S0002W0122.wav (utt = BAC009 + speaker + W + number)

The release ships the audio as one archive per speaker, ``data_aishell/wav/S0002.tar.gz``,
whose members are ``train/S0002/*.wav``: they must be unpacked in place (lhotse's
download does this and leaves the archives beside the folders, where they are
ignored). A speaker whose archive is still packed has its transcript lines rejected
as "audio file missing ... still packed"; a wav/ folder with archives and no unpacked
speaker at all is a layout error.

The adapter is pointed at the folder holding ``data_aishell/`` (lhotse's corpus_dir) or at
``data_aishell/`` itself. Licence: Apache License 2.0 (OpenSLR 33's terms).

Work units: one per speaker folder. The transcript (141,600 lines) is read once by the
listing, which keeps only the byte ranges of each speaker's lines (the utt id names the
speaker), so a unit reads its own lines and nothing sits in memory for the whole corpus.
Transcript lines of speakers with no folder are reported by one unit per such speaker.

Rows: text = the transcript with the word-segmentation spaces removed (a space is kept
between two Latin/digit tokens), language "zh", speaker = the speaker folder,
split_group "aishell:<speaker>"; attrs: split (train/dev/test) and text_segmented (the
transcript as published).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

from .base import Adapter, LayoutError, ProbeError, Reject, clip_row, probe_audio, register_adapter

SPLITS = ("train", "dev", "test")
TRANSCRIPT = Path("transcript") / "aishell_transcript_v0.8.txt"
_SPEAKER = re.compile(rb"S\d{4,}")


def speaker_of(utt: bytes) -> str:
    """The speaker an utterance id names: BAC009S0002W0122 -> S0002 ("" if none)."""
    m = _SPEAKER.search(utt)
    return m.group().decode() if m else ""


def join_words(words: list[str]) -> str:
    """Segmented Chinese -> running text: no spaces, except between two Latin/digit tokens."""
    out = ""
    for w in words:
        if out and out[-1].isascii() and out[-1].isalnum() and w[0].isascii() and w[0].isalnum():
            out += " "
        out += w
    return out


@register_adapter
class Aishell(Adapter):
    corpus = "aishell"
    kind = "speech"
    license = "Apache-2.0"
    provides = frozenset({"text", "speaker"})
    expected_layout = ("data_aishell/wav/<train|dev|test>/<speaker>/<utt>.wav (the per-speaker .tar.gz "
                       "archives unpacked in place) and data_aishell/transcript/aishell_transcript_v0.8.txt")

    def _base(self, root: Path) -> Path:
        return root / "data_aishell" if (root / "data_aishell").is_dir() else root

    def check_layout(self, root: Path, options: dict) -> None:
        base = self._base(root)
        problems = []
        if not (base / TRANSCRIPT).is_file():
            problems.append(f"no {TRANSCRIPT}")
        wav = base / "wav"
        if not wav.is_dir():
            problems.append("no wav/ folder")
        elif not any((wav / s).is_dir() for s in SPLITS):
            if next(wav.glob("*.tar.gz"), None) is not None:
                problems.append("wav/ holds only the packed per-speaker archives: unpack each wav/*.tar.gz "
                                "in place (tar xzf S0002.tar.gz -C wav/)")
            else:
                problems.append("no wav/train, wav/dev or wav/test folder")
        if problems:
            raise LayoutError(f"aishell: {base}: {'; '.join(problems)}. Expected layout: {self.expected_layout}")

    def listing_roots(self, root: Path, options: dict) -> list[Path]:
        base = self._base(root)
        return [base / "transcript", base / "wav"]

    def units(self, root: Path, options: dict) -> list[dict]:
        base = self._base(root)
        ranges: dict[str, list[list[int]]] = {}  # speaker -> byte ranges of its transcript lines
        pos = 0
        with open(base / TRANSCRIPT, "rb") as f:
            for raw in f:
                end = pos + len(raw)
                if raw.strip():
                    spk = speaker_of(raw.split(None, 1)[0])
                    rs = ranges.setdefault(spk, [])
                    if rs and rs[-1][1] == pos:
                        rs[-1][1] = end
                    else:
                        rs.append([pos, end])
                pos = end
        units = []
        seen = set()
        for split in SPLITS:
            d = base / "wav" / split
            if not d.is_dir():
                continue
            for spk_dir in sorted(p for p in d.iterdir() if p.is_dir()):
                spk = spk_dir.name
                seen.add(spk)
                units.append({"split": split, "speaker": spk, "ranges": ranges.get(spk, [])})
        for spk in sorted(set(ranges) - seen):  # lines of speakers with no folder
            packed = (base / "wav" / f"{spk}.tar.gz").is_file() if spk else False
            units.append({"split": "", "speaker": spk, "ranges": ranges[spk], "packed": packed})
        return units

    def _lines(self, base: Path, ranges: list[list[int]]) -> dict[str, str | None]:
        """utt id -> segmented transcript (None: the line is not UTF-8)."""
        texts: dict[str, str | None] = {}
        with open(base / TRANSCRIPT, "rb") as f:
            for start, end in ranges:
                f.seek(start)
                for raw in f.read(end - start).splitlines():
                    parts = raw.split(None, 1)
                    if not parts:
                        continue
                    key = parts[0].decode("ascii", "replace")
                    try:
                        texts[key] = (parts[1] if len(parts) > 1 else b"").decode("utf-8").strip()
                    except UnicodeDecodeError:
                        texts[key] = None
        return texts

    def scan_unit(self, root: Path, options: dict, unit: dict) -> Iterator[dict | Reject]:
        base = self._base(root)
        texts = self._lines(base, unit["ranges"])
        spk, split = unit["speaker"], unit["split"]
        if not split:  # transcript lines whose speaker has no audio folder
            why = (f"audio file missing: speaker archive wav/{spk}.tar.gz is still packed (unpack it in place)"
                   if unit.get("packed") else f"audio file missing: no wav/<split>/{spk or '<speaker>'}/ folder")
            for utt in sorted(texts):
                yield Reject(f"aishell:{utt}", f"transcript line without an audio file ({why})")
            return
        wavs = sorted((base / "wav" / split / spk).glob("*.wav"))
        for path in wavs:
            utt = path.stem
            cid = f"aishell:{utt}"
            if utt not in texts:
                yield Reject(cid, f"no transcript line for {utt} in {TRANSCRIPT.name}")
                continue
            seg = texts[utt]
            if seg is None:
                yield Reject(cid, f"transcript line in {TRANSCRIPT.name} is not valid UTF-8")
                continue
            words = seg.split()
            if not words:
                yield Reject(cid, "empty transcript")
                continue
            try:
                info = probe_audio(path)
            except ProbeError as exc:
                yield Reject(cid, str(exc))
                continue
            yield clip_row(
                id=cid, corpus=self.corpus, kind="speech", path=str(path.resolve()),
                duration_s=info.duration_s, sample_rate=info.sample_rate, language="zh", text=join_words(words),
                speaker=spk, license=self.license, split_group=f"aishell:{spk}",
                attrs=json.dumps({"split": split, "text_segmented": " ".join(words)}, ensure_ascii=False,
                                 sort_keys=True),
            )
        have = {p.stem for p in wavs}
        for utt in sorted(set(texts) - have):
            yield Reject(f"aishell:{utt}", f"transcript line without an audio file: no {split}/{spk}/{utt}.wav "
                         "(audio file missing)")
