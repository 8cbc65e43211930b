"""MUSAN speech (OpenSLR 17): ``musan/speech/<librivox|us-gov>/speech-<part>-<NNNN>.wav``
(16 kHz mono) with per-part ``ANNOTATIONS`` and ``LICENSE`` files.

ANNOTATIONS lines are ``<file id> <gender m|f> <language name>``, e.g.
``speech-librivox-0000 m english``: checked against audiomate's MUSAN reader
(``ANN_NUM_COLUMS_ = {'speech': 3}``, column 1 'm'/'f' is the gender) and its sample corpus
(``speech-librivox-0001 f french``). The same reader notes that some parts ship without an
ANNOTATIONS file (``speech/us-gov/ANNOTATIONS`` is missing in the release); Kaldi's
``make_musan.py`` and lhotse's recipe read no speech annotations at all (every file is its
own speaker: ``utt2spk[utt] = utt``).

MUSAN has no transcripts and no speaker ids. Rows: text "" (provides has no "text"),
language = the annotation's language name mapped to BCP-47 (a name not in the table gives
"und", the name kept in attrs); us-gov (US government hearings and debates) is English
when its file has no annotation. speaker = the file id (MUSAN names no speakers; one
LibriVox reader may appear in several files, which nothing in the corpus can group), so
split_group = ``musan_speech:<file id>``; the annotated gender goes to attrs.

Licence: LibriVox recordings are public domain; us-gov recordings are US government works
(public domain); per MUSAN's LICENSE files.

Faults: a librivox wav without an ANNOTATIONS line is rejected ("annotation missing": its
language is unknown), an ANNOTATIONS line without its wav is rejected ("audio file
missing"), a line without a language field is rejected as corrupt; audio goes through
probe_audio.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from .base import ProbeError, Reject, clip_row, probe_audio, register_adapter
from .musan_music import MusanPortion

PARTS = ("librivox", "us-gov")
# a part's language where its files carry no annotation
PART_LANGUAGE = {"us-gov": "en"}
PART_LICENSE = {"librivox": "public domain (LibriVox; MUSAN speech/librivox/LICENSE)",
                "us-gov": "public domain (US government work; MUSAN speech/us-gov/LICENSE)"}
LANGUAGES = {
    "arabic": "ar", "bulgarian": "bg", "catalan": "ca", "chinese": "zh", "czech": "cs", "danish": "da",
    "dutch": "nl", "english": "en", "esperanto": "eo", "finnish": "fi", "french": "fr", "german": "de",
    "greek": "el", "hebrew": "he", "hungarian": "hu", "italian": "it", "japanese": "ja", "korean": "ko",
    "latin": "la", "mandarin": "zh", "norwegian": "no", "polish": "pl", "portuguese": "pt", "romanian": "ro",
    "russian": "ru", "spanish": "es", "swedish": "sv", "tagalog": "tl", "turkish": "tr", "ukrainian": "uk",
}
GENDERS = {"m": "male", "f": "female"}


@register_adapter
class MusanSpeech(MusanPortion):
    corpus = "musan_speech"
    portion, parts = "speech", PARTS
    kind = "speech"
    license = "public domain (LibriVox recordings, US government works), per MUSAN LICENSE files"
    version = "1"
    provides = frozenset({"language"})
    expected_layout = ("musan/speech/<part>/speech-<part>-NNNN.wav with <part>/ANNOTATIONS "
                       "('<id> <m|f> <language>') and <part>/LICENSE, <part> one of " + ", ".join(PARTS))

    def scan_unit(self, root: Path, options: dict, unit: list[dict]) -> Iterator[dict | Reject]:
        speech = self._portion_dir(root)
        for rec in unit:
            if "error" in rec:
                yield Reject(rec["id"], rec["error"])
                continue
            fields, part = rec["fields"], rec["part"]
            fid = rec["id"].split(":", 1)[1]
            attrs: dict = {"part": part, "license_file": f"speech/{part}/LICENSE"}
            if fields is None:
                if part not in PART_LANGUAGE:
                    yield Reject(rec["id"], f"no line for {fid} in {part}/ANNOTATIONS (annotation missing: "
                                            "language unknown)")
                    continue
                language = PART_LANGUAGE[part]
            elif len(fields) < 2:
                yield Reject(rec["id"], f"corrupt ANNOTATIONS line for {fid}: expected '<m|f> <language>', "
                                        f"got {' '.join(fields)[:60]!r}")
                continue
            else:
                gender, name = fields[0].lower(), fields[1].lower()
                language = LANGUAGES.get(name, "und")
                attrs.update({"gender": GENDERS.get(gender, gender), "language_name": name})
            path = speech / rec["file"]
            try:
                info = probe_audio(path)
            except ProbeError as exc:
                yield Reject(rec["id"], str(exc))
                continue
            yield clip_row(
                id=rec["id"], corpus=self.corpus, kind="speech", path=str(path.resolve()),
                duration_s=info.duration_s, sample_rate=info.sample_rate, language=language, text="",
                speaker=fid, license=PART_LICENSE[part], split_group=rec["id"],
                attrs=json.dumps(attrs, sort_keys=True),
            )
