"""CoVoST 2: speech translation of Common Voice clips (21 languages into English, English
into 15 languages).

Published pieces (facebookresearch/covost README, "Getting Data / CoVoST 2"):

1. the Common Voice release's locale folder of each source language (version 4:
   ``cv-corpus-4-2019-12-10/<src>/clips/*.mp3`` and ``<src>/validated.tsv``);
2. one translation file per direction, ``covost_v2.<src>_<tgt>.tsv`` (from
   ``covost_v2.<src>_<tgt>.tsv.tar.gz``), rows matching ``validated.tsv``, with the columns
   ``path`` (the clip's file name), ``translation`` and ``split`` (``train``, ``train_covost``,
   ``dev``, ``test``): the columns the official scripts read from it (a ``sentence`` or
   ``client_id`` column there is used when present);
3. optionally, the per-split files ``covost_v2.<src>_<tgt>.<train|dev|test>.tsv`` that the
   repository's ``get_covost_splits.py`` writes next to it: columns ``path sentence
   translation client_id`` (train = ``train`` + ``train_covost``; dev; test), joined with
   ``validated.tsv``.

Locale codes are Common Voice's (``zh-CN``, ``sv-SE``), so ``_`` separates source and target.
The tsvs are read like the official scripts read them (tab-separated, ``csv.QUOTE_NONE``,
``escapechar='\\'``). Checked against: facebookresearch/covost ``README.md`` and
``get_covost_splits.py``; the Hugging Face ``covost2`` loading script (data_dir/<src>/clips,
``validated.tsv``, ``covost_v2.<src>_<tgt>.tsv`` merged on ``path`` with the columns
``path translation split`` taken from it and ``sentence client_id`` from validated.tsv).

This adapter's layout (the root)::

    <root>/covost_v2.<src>_<tgt>.tsv                 and/or  <root>/covost_v2.<src>_<tgt>.<split>.tsv
    <root>/cv-corpus-<ver>/<src>/clips/*.mp3 + validated.tsv   (or <root>/<src>/clips/...)

The translation tsvs may also sit one folder down (``<root>/<folder>/covost_v2.*.tsv``).
Option ``clips_root``: where the Common Voice release is when it is not under the root (a
release folder holding ``<src>/``, or the folder above it; relative paths are from the root).
Option ``pairs`` (e.g. ``["fr_en", "en_de"]``; default: every pair found) and ``splits``
(default ``["train", "dev", "test"]``). For a pair with all three per-split files those are
read (and the combined file is not); otherwise the combined file. A column the tsv lacks
(``sentence`` or ``client_id``) is taken from the source locale's ``validated.tsv``, streamed
once per work unit for that unit's clips only, so memory stays bounded by a unit.

Licence: the Common Voice clips and transcripts are CC0-1.0; CoVoST 2's own README lists
"CoVoST data" as CC0 and everything else in the repository as CC BY-NC 4.0, and the
Hugging Face card gives the translations as CC BY-NC 4.0: rows carry both, and a use of the
translations should assume the non-commercial terms.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Iterator

from .base import bcp47, Adapter, LayoutError, ProbeError, Reject, clip_row, probe_audio, register_adapter
from .commonvoice import (ROWS_PER_UNIT, clip_file, clip_stem, is_locale_dir, line_chunks, read_header, read_lines)

TSV_NAME = re.compile(r"^covost_v2\.(?P<src>[A-Za-z]+(?:-[A-Za-z0-9]+)*)_(?P<tgt>[A-Za-z]+(?:-[A-Za-z0-9]+)*)"
                      r"(?:\.(?P<split>train|dev|test))?\.tsv$")
SPLITS = ("train", "dev", "test")
SPLIT_TAGS = {"train": "train", "train_covost": "train", "dev": "dev", "test": "test"}  # get_v2_split


def _parse(line: str) -> list[str]:
    return next(csv.reader([line], delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\"), [])


@register_adapter
class CoVoST2(Adapter):
    corpus = "covost2"
    kind = "speech"
    license = "CC0-1.0 (Common Voice clips and transcripts) + CC-BY-NC-4.0 (CoVoST 2 translations)"
    provides = frozenset({"text", "speaker", "translation"})
    expected_layout = ("<root>/covost_v2.<src>_<tgt>.tsv (path, sentence, translation, split) and/or "
                       "covost_v2.<src>_<tgt>.<train|dev|test>.tsv (path, sentence, translation, client_id), "
                       "plus the Common Voice clips of each source language: <root>/cv-corpus-<ver>/<src>/clips/*.mp3 "
                       "with <src>/validated.tsv (or <root>/<src>/..., or option clips_root)")

    def _err(self, msg: str) -> LayoutError:
        return LayoutError(f"covost2: {msg}. Expected layout: {self.expected_layout}")

    # ---------------------------------------------------------------- listing
    def _found(self, root: Path) -> dict[str, dict]:
        """pair -> {"src", "tgt", "combined": Path | None, "train"/"dev"/"test": Path | None}."""
        pairs: dict[str, dict] = {}
        if not root.is_dir():
            return pairs
        cands = sorted(root.glob("covost_v2.*.tsv")) + sorted(root.glob("*/covost_v2.*.tsv"))
        for p in cands:
            m = TSV_NAME.match(p.name)
            if not m or not p.is_file():
                continue
            pair = f"{m['src']}_{m['tgt']}"
            entry = pairs.setdefault(pair, {"src": m["src"], "tgt": m["tgt"], "combined": None,
                                            **{s: None for s in SPLITS}})
            slot = m["split"] or "combined"
            if entry[slot] is not None and entry[slot].parent != p.parent:
                raise self._err(f"{p.name} is both in {entry[slot].parent} and {p.parent}; keep one")
            entry[slot] = entry[slot] or p
        return pairs

    def _pairs(self, root: Path, options: dict) -> dict[str, dict]:
        found = self._found(root)
        if not found:
            raise self._err(f"no covost_v2.<src>_<tgt>.tsv under {root}")
        wanted = options.get("pairs")
        if wanted:
            wanted = [wanted] if isinstance(wanted, str) else list(wanted)
            missing = [p for p in wanted if p not in found]
            if missing:
                raise self._err(f"pair(s) {missing} have no covost_v2 tsv under {root} (found: {sorted(found)})")
            return {p: found[p] for p in wanted}
        return dict(sorted(found.items()))

    def _locale_dir(self, root: Path, options: dict, src: str) -> Path | None:
        base = root
        if options.get("clips_root"):  # relative to the root (the root itself may be relative to the cwd)
            clips = Path(options["clips_root"])
            base = clips if clips.is_absolute() else root / clips
        for c in [base] + sorted(d for d in base.glob("cv-corpus-*") if d.is_dir()):
            if is_locale_dir(c / src):
                return c / src
            if c.name == src and is_locale_dir(c):
                return c
        return None

    def _files(self, entry: dict, options: dict) -> list[tuple[Path, str | None]]:
        """The tsvs a pair is read from: (file, its split or None for the combined file)."""
        splits = self._splits(options)
        if all(entry[s] is not None for s in SPLITS) or entry["combined"] is None:
            return [(entry[s], s) for s in SPLITS if entry[s] is not None and s in splits]
        return [(entry["combined"], None)]

    def _splits(self, options: dict) -> list[str]:
        splits = options.get("splits") or list(SPLITS)
        splits = [splits] if isinstance(splits, str) else list(splits)
        bad = [s for s in splits if s not in SPLITS]
        if bad:
            raise self._err(f"unknown split(s) {bad}: CoVoST 2 splits are {list(SPLITS)}")
        return splits

    def check_layout(self, root: Path, options: dict) -> None:
        for pair, entry in self._pairs(root, options).items():
            locdir = self._locale_dir(root, options, entry["src"])
            if locdir is None:
                raise self._err(f"pair {pair}: no Common Voice folder {entry['src']}/clips/ (with validated.tsv) "
                                f"under {options.get('clips_root') or root}")
            for path, _ in self._files(entry, options):
                header = read_header(path)
                if "path" not in header or "translation" not in header:
                    raise self._err(f"{path.name} has columns {header}, not path and translation")
                if path is entry["combined"] and "split" not in header:
                    raise self._err(f"{path.name} has no split column")
                if not {"sentence", "client_id"} <= set(header) and not (locdir / "validated.tsv").is_file():
                    raise self._err(f"{path.name} has no sentence/client_id and {locdir}/validated.tsv is missing")

    def listing_roots(self, root: Path, options: dict) -> list[Path]:
        out: list[Path] = []
        for entry in self._pairs(root, options).values():
            out += [p for p, _ in self._files(entry, options)]
            locdir = self._locale_dir(root, options, entry["src"])
            if locdir is not None and locdir not in out:
                out.append(locdir)
        return out

    def units(self, root: Path, options: dict) -> list[dict]:
        units = []
        for pair, entry in self._pairs(root, options).items():
            locdir = self._locale_dir(root, options, entry["src"])
            for path, split in self._files(entry, options):
                for start, end, line in line_chunks(path, ROWS_PER_UNIT):
                    units.append({"pair": pair, "src": entry["src"], "tgt": entry["tgt"], "tsv": str(path),
                                  "split": split, "clips": str(locdir), "start": start, "end": end, "line": line})
        return units

    # ---------------------------------------------------------------- rows
    def scan_unit(self, root: Path, options: dict, unit: dict) -> Iterator[dict | Reject]:
        tsv, pair = Path(unit["tsv"]), unit["pair"]
        locdir = Path(unit["clips"]).resolve()
        header = read_header(tsv)
        wanted = set(self._splits(options))
        recs: list[tuple[str, dict | Reject]] = []  # (clip path value or "", record or reject)
        here: set[str] = set()
        for lineno, raw in read_lines(tsv, unit["start"], unit["end"], unit["line"]):
            if not raw.strip():
                continue
            where = f"covost2:{pair}/{tsv.name}:{lineno}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                recs.append(("", Reject(where, f"{tsv.name} line {lineno} is not valid UTF-8")))
                continue
            fields = _parse(text)
            if len(fields) != len(header):
                recs.append(("", Reject(where, f"bad metadata row (corrupt tsv line): {len(fields)} fields where "
                                               f"the header of {tsv.name} has {len(header)}")))
                continue
            rec = dict(zip(header, fields))
            pv = rec["path"].strip()
            if not pv:
                recs.append(("", Reject(where, f"bad metadata row: empty path in {tsv.name}")))
                continue
            tag = unit["split"] or rec.get("split", "").strip()
            split = SPLIT_TAGS.get(tag)
            if split is None:
                recs.append(("", Reject(f"covost2:{pair}/{clip_stem(pv)}",
                                        f"bad metadata row: split {tag!r} is not a CoVoST 2 split")))
                continue
            if split not in wanted or pv in here:
                continue  # another split, or the same clip twice in this file
            here.add(pv)
            rec["_split"], rec["_tag"] = split, tag
            recs.append((pv, rec))
        need = [c for c in ("sentence", "client_id") if c not in header]
        cv = self._from_validated(locdir, {pv for pv, r in recs if pv}) if need else {}
        for pv, rec in recs:
            yield rec if isinstance(rec, Reject) else self._row(unit, tsv, locdir, pv, rec, need, cv)

    @staticmethod
    def _from_validated(locdir: Path, paths: set[str]) -> dict[str, dict]:
        """path -> {sentence, client_id} from validated.tsv, for these clips only (one streamed read)."""
        out: dict[str, dict] = {}
        vt = locdir / "validated.tsv"
        header = read_header(vt)
        if not paths or "path" not in header:
            return out
        with open(vt, "rb") as f:
            f.readline()
            for raw in f:
                fields = raw.rstrip(b"\r\n").decode("utf-8", "replace").split("\t")
                if len(fields) != len(header):
                    continue
                rec = dict(zip(header, fields))
                if rec["path"] in paths:
                    out[rec["path"]] = {"sentence": rec.get("sentence", ""), "client_id": rec.get("client_id", "")}
        return out

    def _row(self, unit: dict, tsv: Path, locdir: Path, pv: str, rec: dict, need: list[str],
             cv: dict) -> dict | Reject:
        pair = unit["pair"]
        cid = f"covost2:{pair}/{clip_stem(pv)}"
        if need:
            if pv not in cv:
                return Reject(cid, "clip missing from the Common Voice validated.tsv (no "
                                   f"{' / '.join(need)} for it)")
            for c in need:
                rec[c] = cv[pv][c]
        translation = rec["translation"].strip()
        if not translation:
            return Reject(cid, "empty translation")
        sentence = rec["sentence"].strip()
        if not sentence:
            return Reject(cid, "no transcript: empty sentence")
        client = rec["client_id"].strip()
        path = clip_file(locdir, pv)
        try:
            info = probe_audio(path)
        except ProbeError as exc:
            return Reject(cid, str(exc))
        attrs = {"pair": pair, "split": rec["_split"], "split_tag": rec["_tag"], "tsv": tsv.name}
        return clip_row(
            id=cid, corpus=self.corpus, kind="speech", path=str(path), duration_s=info.duration_s,
            sample_rate=info.sample_rate, language=bcp47(unit["src"]), text=sentence, speaker=client,
            translation=translation, translation_language=bcp47(unit["tgt"]), license=self.license,
            split_group=f"covost2:{client}" if client else cid,
            attrs=json.dumps(attrs, sort_keys=True, ensure_ascii=False),
        )
