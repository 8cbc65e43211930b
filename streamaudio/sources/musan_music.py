"""MUSAN music (OpenSLR 17): ``musan/music/<part>/music-<part>-<NNNN>.wav`` (16 kHz mono),
``<part>`` one of fma, fma-western-art, hd-classical, jamendo, rfm, each folder with an
``ANNOTATIONS`` file and a ``LICENSE`` file.

ANNOTATIONS lines are space-separated: ``<file id> <genre[,genre...]> <Y|N vocals> <artist>``
and, where known, a fifth field (the composer); names use ``_`` for spaces, e.g.
``music-fma-0000 pop,electronica Y Quiet_Music_for_Tiny_Robots``. Checked against Kaldi's
``egs/sre16/v1/local/make_musan.py`` (``utt, genres, vocals, musician = line.split()[:4]``;
only annotated files are used, an annotated file without audio is reported "Missing file"),
lhotse's ``lhotse/recipes/musan.py`` (``genres.split(",")``, ``vocals == "Y"``, speaker =
musician) and audiomate's MUSAN reader and sample corpus (``music: 4`` annotation columns).

Rows: labels = the genres, attrs = part folder, vocals flag, artist (and composer when the
line has a fifth field), the LICENSE file that covers the clip. split_group is the artist
(``musan_music:artist:<artist>``): tracks of one artist share a style and often a recording
chain, so they stay on one side of a split (a clip without an artist is its own group).

Licence: MUSAN states that every file is under a Creative Commons licence or in the US
public domain, per file, as listed in each part's LICENSE file (the corpus as a whole is
distributed by OpenSLR as CC BY 4.0). The adapter does not parse the LICENSE files (their
per-file format is not documented); rows name the part's LICENSE file in attrs.

Faults: a wav without an ANNOTATIONS line (Kaldi skips it) and an ANNOTATIONS line without
its wav are rejects ("missing"); a line with fewer than three fields or a vocals field other
than Y/N is rejected as a corrupt line; audio goes through probe_audio. Work units are batches
of files, the annotations resolved in the (cheap) listing.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from .base import Adapter, LayoutError, ProbeError, Reject, clip_row, probe_audio, register_adapter

PARTS = ("fma", "fma-western-art", "hd-classical", "jamendo", "rfm")
FILES_PER_UNIT = 32
LICENSE = "CC (various) / US public domain, per file (MUSAN LICENSE files)"


def musan_dir(root: Path, portion: str, parts: tuple[str, ...]) -> Path | None:
    """``musan/<portion>`` under ``root``: root/musan/<portion>, root/<portion> or root itself,
    the first that holds one of ``parts``."""
    for cand in (root / "musan" / portion, root / portion, root):
        if any((cand / p).is_dir() for p in parts):
            return cand
    return None


def read_annotations(path: Path) -> tuple[dict[str, list[str]], list[tuple[int, str]]]:
    """{file id: fields after the id} of an ANNOTATIONS file, and (line number, text) of the
    lines that cannot be read (not UTF-8)."""
    out: dict[str, list[str]] = {}
    bad: list[tuple[int, str]] = []
    if not path.is_file():
        return out, bad
    for lineno, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            bad.append((lineno, raw.decode("utf-8", "replace")))
            continue
        fields = line.split()
        if fields:
            out[fields[0].removesuffix(".wav")] = fields[1:]
    return out, bad


def list_part(base: Path, part: str, corpus: str) -> list[dict]:
    """Every wav of a part and every annotated id, in file-id order, each with its annotation
    fields (or None) or an error."""
    d = base / part
    ann, bad = read_annotations(d / "ANNOTATIONS")
    wavs = {p.stem: p for p in d.glob("*.wav")}
    recs = []
    for fid in sorted(set(wavs) | set(ann)):
        rec = {"id": f"{corpus}:{fid}", "part": part, "file": f"{part}/{fid}.wav"}
        if fid not in wavs:
            rec["error"] = f"audio file missing: {part}/ANNOTATIONS lists {fid} but {part}/{fid}.wav does not exist"
        else:
            rec["fields"] = ann.get(fid)
        recs.append(rec)
    for lineno, text in bad:
        recs.append({"id": f"{corpus}:{part}/ANNOTATIONS:{lineno}", "part": part,
                     "error": f"ANNOTATIONS line {lineno} is not valid UTF-8: {text[:40]!r}"})
    return recs


class MusanPortion(Adapter):
    """A MUSAN portion (music, speech) read part by part (``parts``), files listed from each
    part's folder and ANNOTATIONS, FILES_PER_UNIT files per work unit."""
    portion: str = ""
    parts: tuple[str, ...] = ()

    def _portion_dir(self, root: Path) -> Path:
        found = musan_dir(root, self.portion, self.parts)
        if found is None:
            raise LayoutError(f"{self.corpus}: no {self.portion}/<part> folder ({', '.join(self.parts)}) under "
                              f"{root}. Expected layout: {self.expected_layout}")
        return found

    def check_layout(self, root: Path, options: dict) -> None:
        self._portion_dir(root)

    def listing_roots(self, root: Path, options: dict) -> list[Path]:
        return [self._portion_dir(root)]

    def units(self, root: Path, options: dict) -> list[list[dict]]:
        base = self._portion_dir(root)
        recs = [r for part in self.parts if (base / part).is_dir() for r in list_part(base, part, self.corpus)]
        return [recs[i:i + FILES_PER_UNIT] for i in range(0, len(recs), FILES_PER_UNIT)]


@register_adapter
class MusanMusic(MusanPortion):
    corpus = "musan_music"
    portion, parts = "music", PARTS
    kind = "music"
    license = LICENSE
    version = "1"
    provides = frozenset({"labels"})
    expected_layout = ("musan/music/<part>/music-<part>-NNNN.wav with <part>/ANNOTATIONS "
                       "('<id> <genres> <Y|N> <artist> [<composer>]') and <part>/LICENSE, <part> one of "
                       + ", ".join(PARTS))

    def scan_unit(self, root: Path, options: dict, unit: list[dict]) -> Iterator[dict | Reject]:
        music = self._portion_dir(root)
        for rec in unit:
            if "error" in rec:
                yield Reject(rec["id"], rec["error"])
                continue
            fields, part = rec["fields"], rec["part"]
            fid = rec["id"].split(":", 1)[1]
            if fields is None:
                yield Reject(rec["id"], f"no line for {fid} in {part}/ANNOTATIONS (annotation missing: "
                                        "genres, vocals and artist unknown)")
                continue
            if len(fields) < 2 or fields[1] not in ("Y", "N"):
                yield Reject(rec["id"], f"corrupt ANNOTATIONS line for {fid}: expected '<genres> <Y|N> <artist>', "
                                        f"got {' '.join(fields)[:60]!r}")
                continue
            path = music / rec["file"]
            try:
                info = probe_audio(path)
            except ProbeError as exc:
                yield Reject(rec["id"], str(exc))
                continue
            genres = [g for g in fields[0].split(",") if g]
            artist = fields[2] if len(fields) > 2 else ""
            attrs = {"part": part, "vocals": fields[1] == "Y", "artist": artist,
                     "license_file": f"music/{part}/LICENSE"}
            if len(fields) > 3:
                attrs["composer"] = " ".join(fields[3:])
            yield clip_row(
                id=rec["id"], corpus=self.corpus, kind="music", path=str(path.resolve()),
                duration_s=info.duration_s, sample_rate=info.sample_rate, labels=genres,
                license=self.license, split_group=f"{self.corpus}:artist:{artist}" if artist else rec["id"],
                attrs=json.dumps(attrs, sort_keys=True),
            )
