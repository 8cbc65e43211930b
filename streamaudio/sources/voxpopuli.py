"""VoxPopuli transcribed (ASR) data: European Parliament speech in 16 languages, cut into
utterances by the corpus' own script, Ogg Vorbis 16 kHz mono.

Published layout, as ``python -m voxpopuli.get_asr_data --root [ROOT] --lang [LANGUAGE]``
writes it (facebookresearch/voxpopuli ``README.md`` "Transcribed (ASR) Data" and
``voxpopuli/get_asr_data.py``; lhotse's ``lhotse/recipes/voxpopuli.py`` reads the same
annotations, ``asr_<lang>.tsv.gz``, but cuts the raw sessions itself)::

    [ROOT]/transcribed_data/<lang>/asr_<split>.tsv      split: train, dev, test
    [ROOT]/transcribed_data/<lang>/<year>/<id>.ogg       year = the first 4 characters of id
    [ROOT]/transcribed_data/<lang>/asr_<lang>.tsv.gz     the downloaded annotations (ignored)

``<lang>`` is one of en, de, fr, es, pl, it, ro, hu, cs, nl, fi, hr, sk, sl, et, lt, or
en_accented (non-native English, test split only; language "en", the accent in its own
column). ``<id>`` is ``<session id>-<utterance id>``, e.g.
``20180206-0900-PLENARY-15-hr_20180206-16:10:06_5``. Each tsv is tab-separated with a
header row: ``id raw_text normalized_text speaker_id split gender is_gold_transcript
accent`` (releases before the accented data lack the last two columns; both are read,
by the header). The script joins fields with tabs and no quoting, so a row whose field
count differs from the header's is malformed and rejected.

The adapter is pointed at [ROOT], at ``transcribed_data/`` or at one ``<lang>/`` folder.
Options: ``languages`` (language folders to read; default all found), ``splits``
(default train, dev, test).

Rows: text = raw_text (``attrs.normalized_text`` keeps the normalised form), language =
the language folder (en_accented -> en), speaker = speaker_id, split_group
"voxpopuli:<speaker_id>" (speaker ids are European Parliament member ids, shared across
languages, so a speaker stays in one split everywhere; a row without one is grouped by
its session); attrs: split, gender, is_gold_transcript, accent, normalized_text.

Licence: CC0 for the VoxPopuli data (README "License"; the raw recordings are also under
the European Parliament's legal notice).

Work units: blocks of ROWS_PER_UNIT rows of one tsv, found by the listing as byte offsets
(one pass over the tsv bytes, nothing else kept), so a unit reads only its own rows.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from .base import Adapter, LayoutError, ProbeError, Reject, clip_row, probe_audio, register_adapter

SPLITS = ("train", "dev", "test")
COLUMNS = ("id", "raw_text", "normalized_text", "speaker_id", "split", "gender", "is_gold_transcript", "accent")
REQUIRED = ("id", "raw_text", "normalized_text", "speaker_id")
ROWS_PER_UNIT = 256
_NONE = ("", "None", "none", "N/A")


def language_of(lang_dir: str) -> str:
    """The BCP-47 language of a language folder: en_accented -> en."""
    return lang_dir.split("_")[0].lower()


@register_adapter
class VoxPopuli(Adapter):
    corpus = "voxpopuli"
    kind = "speech"
    license = "CC0-1.0 (VoxPopuli data; raw recordings also under the European Parliament legal notice)"
    provides = frozenset({"text", "speaker"})
    expected_layout = ("transcribed_data/<lang>/asr_<train|dev|test>.tsv (tab-separated: id, raw_text, "
                       "normalized_text, speaker_id, split, gender[, is_gold_transcript, accent]) and "
                       "transcribed_data/<lang>/<year>/<id>.ogg, as voxpopuli.get_asr_data writes them; "
                       "pointed at the folder holding transcribed_data/, at it, or at one <lang>/ folder")

    def _splits(self, options: dict) -> list[str]:
        splits = options.get("splits") or list(SPLITS)
        return [splits] if isinstance(splits, str) else list(splits)

    def _langs(self, root: Path, options: dict) -> dict[str, Path]:
        """Language folder name -> folder, in name order."""
        splits = self._splits(options)

        def has_tsv(d: Path) -> bool:
            return any((d / f"asr_{s}.tsv").is_file() for s in splits)

        base = root / "transcribed_data" if (root / "transcribed_data").is_dir() else root
        if has_tsv(base) and base.name != "transcribed_data":
            found = {base.name: base}  # pointed at one language folder
        else:
            found = {d.name: d for d in sorted(base.iterdir()) if d.is_dir() and has_tsv(d)} if base.is_dir() else {}
        wanted = options.get("languages")
        if wanted:
            wanted = [wanted] if isinstance(wanted, str) else list(wanted)
            missing = [w for w in wanted if w not in found]
            if missing:
                raise LayoutError(f"voxpopuli: language folder(s) {missing} with asr_<split>.tsv not found under "
                                  f"{base}. Expected layout: {self.expected_layout}")
            found = {w: found[w] for w in wanted}
        if not found:
            raise LayoutError(f"voxpopuli: no <lang>/asr_<split>.tsv ({', '.join(splits)}) under {root}. "
                              f"Expected layout: {self.expected_layout}")
        return found

    def check_layout(self, root: Path, options: dict) -> None:
        for lang, d in self._langs(root, options).items():
            for split in self._splits(options):
                tsv = d / f"asr_{split}.tsv"
                if tsv.is_file():
                    self._header(tsv, lang)

    def _header(self, tsv: Path, lang: str) -> list[str]:
        with open(tsv, "rb") as f:
            head = f.readline().decode("utf-8", "replace").rstrip("\r\n").split("\t")
        missing = [c for c in REQUIRED if c not in head]
        if missing:
            raise LayoutError(f"voxpopuli: {lang}/{tsv.name} has no column(s) {missing} in its header. "
                              f"Expected layout: {self.expected_layout}")
        return head

    def listing_roots(self, root: Path, options: dict) -> list[Path]:
        return list(self._langs(root, options).values())

    def units(self, root: Path, options: dict) -> list[dict]:
        """Blocks of rows of each tsv: {"lang", "split", "at" (byte offset), "line", "n"}."""
        out = []
        for lang, d in self._langs(root, options).items():
            for split in self._splits(options):
                tsv = d / f"asr_{split}.tsv"
                if not tsv.is_file():
                    continue
                with open(tsv, "rb") as f:
                    at = len(f.readline())  # the header
                    line, block_at, block_line, n = 2, at, 2, 0
                    for raw in f:
                        if n == ROWS_PER_UNIT:
                            out.append({"lang": lang, "split": split, "at": block_at, "line": block_line, "n": n})
                            block_at, block_line, n = at, line, 0
                        at += len(raw)
                        line += 1
                        n += 1
                    if n:
                        out.append({"lang": lang, "split": split, "at": block_at, "line": block_line, "n": n})
        return out

    def scan_unit(self, root: Path, options: dict, unit: dict) -> Iterator[dict | Reject]:
        lang, split = unit["lang"], unit["split"]
        d = self._langs(root, {**options, "languages": [lang]})[lang].resolve()  # rows carry absolute paths
        tsv = d / f"asr_{split}.tsv"
        header = self._header(tsv, lang)
        with open(tsv, "rb") as f:
            f.seek(unit["at"])
            for k in range(unit["n"]):
                raw = f.readline()
                if not raw:
                    break
                item = self._row(raw, header, d, lang, split, f"{lang}/{tsv.name}:{unit['line'] + k}")
                if item is not None:
                    yield item

    def _row(self, raw: bytes, header: list[str], d: Path, lang: str, split: str, where: str) -> dict | Reject | None:
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            return None
        try:
            fields = line.decode("utf-8").split("\t")
        except UnicodeDecodeError:
            return Reject(f"voxpopuli:{where}", "row is not valid UTF-8")
        if len(fields) != len(header):
            return Reject(f"voxpopuli:{where}", f"malformed row: {len(fields)} tab-separated fields, "
                                                f"the header has {len(header)}")
        r = dict(zip(header, fields))
        uid = r["id"].strip()
        if not uid or "/" in uid:
            return Reject(f"voxpopuli:{where}", f"malformed row: bad id {uid!r}")
        cid = f"voxpopuli:{lang}:{uid}"
        text = r["raw_text"].strip()
        if not text:
            return Reject(cid, "empty transcript (raw_text)")
        path = d / uid[:4] / f"{uid}.ogg"
        try:
            info = probe_audio(path)
        except ProbeError as exc:
            return Reject(cid, str(exc))
        speaker = r["speaker_id"].strip()
        speaker = "" if speaker in _NONE else speaker
        group = f"voxpopuli:{speaker}" if speaker else f"voxpopuli:session:{uid.split('_')[0]}"
        attrs = {"split": split, "normalized_text": r["normalized_text"].strip()}
        for col in ("gender", "is_gold_transcript", "accent"):
            if col in r:
                v = r[col].strip()
                attrs[col] = {"True": True, "False": False}.get(v, None if v in _NONE else v)
        return clip_row(
            id=cid, corpus=self.corpus, kind="speech", path=str(path), duration_s=info.duration_s,
            sample_rate=info.sample_rate, language=language_of(lang), text=text, speaker=speaker,
            license=self.license, split_group=group, attrs=json.dumps(attrs, ensure_ascii=False, sort_keys=True),
        )
