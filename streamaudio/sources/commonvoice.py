"""Mozilla Common Voice (any locale, any release).

Published layout (one tarball per locale and release, ``cv-corpus-<ver>-<locale>.tar.gz``,
unpacking into the release folder)::

    cv-corpus-<version>/<locale>/clips/<name>.mp3        e.g. common_voice_en_19687170.mp3
    cv-corpus-<version>/<locale>/validated.tsv           every clip with enough up-votes
    cv-corpus-<version>/<locale>/train.tsv, dev.tsv, test.tsv   speaker-disjoint subsets of validated
    cv-corpus-<version>/<locale>/invalidated.tsv, other.tsv     down-voted / not yet reviewed clips
    (newer releases also: clip_durations.tsv, reported.tsv, validated_sentences.tsv, ...: not read)

The clip tsvs are tab-separated with a header line and no quoting. Columns grew over the
releases: ``client_id path sentence up_votes down_votes age gender accent`` (the early ones,
e.g. the version 4 that CoVoST 2 uses), then ``locale segment``, then ``accent`` renamed
``accents`` and ``variant`` added (CorporaCreator #118, #124), then ``sentence_id`` and
``sentence_domain`` (v17: ``client_id path sentence_id sentence sentence_domain up_votes
down_votes age gender accents variant locale segment``). Columns are read by header name, so
any of these works. ``path`` is the clip's file name under ``clips/`` (in the first releases
a bare name without ``.mp3``).
Checked against: lhotse ``lhotse/recipes/commonvoice.py`` (``<lang>/{train,dev,test}.tsv``,
``<lang>/clips/<path>``, ``client_id``/``sentence``/``accent``), the CorporaCreator README (the
tool that writes the release tsvs: the column list, validated/invalidated/other and the
train/dev/test subsets of validated), the Hugging Face ``common_voice`` loading script and
dataset card (columns; read with ``csv.QUOTE_NONE``), the ``common-voice/cv-dataset`` README
(releases, CC0) and facebookresearch/covost ``get_covost_splits.py`` (reads ``validated.tsv``).

Root: the folder a download unpacks into (holding one or more ``cv-corpus-*`` folders), one
``cv-corpus-*`` release folder, or a single ``<locale>`` folder.
Options: ``locales`` (default: every locale present), ``tsvs`` (default ``["validated"]``: the
tsv files whose rows are the clips; a clip listed in several of them is kept once, from the
first of them that lists it).

Work units are runs of ROWS_PER_UNIT lines of one tsv (byte ranges found by a line count, no
parsing), so a locale with a million clips never sits in memory: a unit holds its own rows
only (plus, when several tsvs are chosen, a sorted array of 64-bit hashes of the earlier
tsvs' paths, 8 bytes a clip, for the once-only rule). A path repeated inside one tsv is
kept once within a unit; the releases never repeat one.

Rows: id ``commonvoice:<locale>/<clip name without .mp3>``, text = sentence, language = the
locale as BCP-47, speaker = client_id, split_group ``commonvoice:<client_id>``, attrs
(up_votes, down_votes, age, gender, accents, variant, locale, tsv, and sentence_id,
sentence_domain, segment when set). Rejects: a line that is not UTF-8 or has the wrong number
of fields ("bad metadata row"), an empty sentence ("no transcript"), and whatever
probe_audio finds (missing, empty, corrupt, truncated, silent clip).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from array import array
from pathlib import Path
from typing import Iterator

import numpy as np

from .base import Adapter, LayoutError, ProbeError, Reject, bcp47, clip_row, probe_audio, register_adapter

CLIP_TSVS = ("validated", "train", "dev", "test", "invalidated", "other")
REQUIRED_COLUMNS = ("client_id", "path", "sentence")
ROWS_PER_UNIT = 1000
CV_LICENSE = "CC0-1.0"


def is_locale_dir(d: Path) -> bool:
    return (d / "clips").is_dir() and any((d / f"{t}.tsv").is_file() for t in CLIP_TSVS)


def release_locales(root: Path, what: str, expected: str) -> dict[str, Path]:
    """locale -> locale folder under ``root``: ``root`` itself a locale folder, a
    ``cv-corpus-*`` release folder, or a folder holding release folders."""
    if is_locale_dir(root):
        return {root.name: root}
    found: dict[str, Path] = {}
    releases = [root] + sorted(d for d in root.glob("cv-corpus-*") if d.is_dir())
    for rel in releases:
        for d in sorted(p for p in rel.iterdir() if p.is_dir()) if rel.is_dir() else []:
            if is_locale_dir(d):
                if d.name in found:
                    raise LayoutError(f"{what}: locale {d.name!r} is in two releases ({found[d.name]} and {d}); "
                                      f"point the root at one release folder. Expected layout: {expected}")
                found[d.name] = d
    return found


def read_header(path: Path) -> list[str]:
    with open(path, "rb") as f:
        first = f.readline()
    return first.decode("utf-8", "replace").rstrip("\r\n").lstrip("\ufeff").split("\t") if first else []


def line_chunks(path: Path, rows: int = ROWS_PER_UNIT) -> list[tuple[int, int, int]]:
    """(start byte, end byte, first line number) of each run of ``rows`` lines after the header.
    Only counts lines: cheap enough for a listing (a 300 MB tsv in about a second)."""
    out = []
    with open(path, "rb") as f:
        header = f.readline()
        if not header:
            return out
        pos = start = len(header)
        line = start_line = 2
        n = 0
        for raw in f:
            if n == rows:
                out.append((start, pos, start_line))
                start, start_line, n = pos, line, 0
            pos += len(raw)
            line += 1
            n += 1
        if n:
            out.append((start, pos, start_line))
    return out


def read_lines(path: Path, start: int, end: int, first_line: int) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line without its end) of the lines in [start, end)."""
    with open(path, "rb") as f:
        f.seek(start)
        pos, lineno = start, first_line
        while pos < end:
            raw = f.readline()
            if not raw:
                break
            pos += len(raw)
            yield lineno, raw.rstrip(b"\r\n")
            lineno += 1


def _h64(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "little")


@functools.lru_cache(maxsize=8)
def _path_hashes(path: str, size: int, mtime_ns: int) -> np.ndarray:
    """Sorted 64-bit hashes of a tsv's ``path`` column (8 bytes a row: a million rows is 8 MB)."""
    header = read_header(Path(path))
    col = header.index("path") if "path" in header else 1
    hashes = array("Q")
    with open(path, "rb") as f:
        f.readline()
        for raw in f:
            fields = raw.rstrip(b"\r\n").split(b"\t")
            if len(fields) > col and fields[col]:
                hashes.append(_h64(fields[col].decode("utf-8", "replace").strip()))
    return np.sort(np.frombuffer(hashes, dtype=np.uint64)) if len(hashes) else np.zeros(0, np.uint64)


def hash_sets(paths: list[Path]) -> list[np.ndarray]:
    """The path-hash arrays of these tsvs (cached per process by path, size and mtime)."""
    out = []
    for p in paths:
        st = os.stat(p)
        out.append(_path_hashes(str(p), st.st_size, st.st_mtime_ns))
    return out


def listed_in(sets: list[np.ndarray], key: str) -> bool:
    """Whether any of these hash sets (hash_sets) holds a clip with this ``path`` value."""
    h = np.uint64(_h64(key))
    for arr in sets:
        i = int(np.searchsorted(arr, h))
        if i < len(arr) and arr[i] == h:
            return True
    return False


def clip_file(locdir: Path, path_value: str) -> Path:
    """The clip a tsv ``path`` names: ``clips/<name>``; the first releases wrote the name without ``.mp3``."""
    name = Path(path_value).name
    p = locdir / "clips" / name
    if not Path(name).suffix and not p.exists() and (locdir / "clips" / f"{name}.mp3").exists():
        p = locdir / "clips" / f"{name}.mp3"
    return p


def clip_stem(path_value: str) -> str:
    name = Path(path_value).name
    return name[:-4] if name.lower().endswith(".mp3") else name


def _int_or_raw(v: str):
    try:
        return int(v)
    except ValueError:
        return v


@register_adapter
class CommonVoice(Adapter):
    corpus = "commonvoice"
    kind = "speech"
    license = CV_LICENSE
    provides = frozenset({"text", "speaker"})
    expected_layout = ("cv-corpus-<version>/<locale>/clips/*.mp3 with <locale>/validated.tsv (and train.tsv, "
                       "dev.tsv, test.tsv, invalidated.tsv, other.tsv): tab-separated, header client_id, path, "
                       "sentence, up_votes, down_votes, age, gender, accents|accent, ...; the root is the folder "
                       "holding cv-corpus-*/, one cv-corpus-* release folder or one <locale> folder")

    def _err(self, msg: str) -> LayoutError:
        return LayoutError(f"commonvoice: {msg}. Expected layout: {self.expected_layout}")

    def _tsvs(self, options: dict) -> list[str]:
        tsvs = options.get("tsvs") or ["validated"]
        if isinstance(tsvs, str):
            tsvs = [tsvs]
        out = []
        for t in tsvs:
            t = str(t).removesuffix(".tsv")
            if t not in out:
                out.append(t)
        return out

    def locales(self, root: Path, options: dict) -> dict[str, Path]:
        found = release_locales(root, "commonvoice", self.expected_layout)
        if not found:
            raise self._err(f"no Common Voice locale folder (<locale>/clips/ and <locale>/validated.tsv) under {root}")
        wanted = options.get("locales")
        if wanted:
            wanted = [wanted] if isinstance(wanted, str) else list(wanted)
            missing = [loc for loc in wanted if loc not in found]
            if missing:
                raise self._err(f"locale(s) {missing} not found under {root} (found: {sorted(found)})")
            found = {loc: found[loc] for loc in wanted}
        return dict(sorted(found.items()))

    def check_layout(self, root: Path, options: dict) -> None:
        for loc, d in self.locales(root, options).items():
            for t in self._tsvs(options):
                p = d / f"{t}.tsv"
                if not p.is_file():
                    raise self._err(f"{loc}/{t}.tsv not found in {d}")
                header = read_header(p)
                if header and not all(c in header for c in REQUIRED_COLUMNS):
                    raise self._err(f"{p} has columns {header}, not {list(REQUIRED_COLUMNS)}")

    def listing_roots(self, root: Path, options: dict) -> list[Path]:
        return list(self.locales(root, options).values())

    def units(self, root: Path, options: dict) -> list[dict]:
        units = []
        tsvs = self._tsvs(options)
        for loc, d in self.locales(root, options).items():
            rel = os.path.relpath(d, root)
            for i, t in enumerate(tsvs):
                for start, end, line in line_chunks(d / f"{t}.tsv", ROWS_PER_UNIT):
                    units.append({"locale": loc, "dir": rel, "tsv": t, "prior": tsvs[:i],
                                  "start": start, "end": end, "line": line})
        return units

    def scan_unit(self, root: Path, options: dict, unit: dict) -> Iterator[dict | Reject]:
        locdir = (root / unit["dir"]).resolve()
        loc, tsv = unit["locale"], unit["tsv"]
        tsv_path = locdir / f"{tsv}.tsv"
        header = read_header(tsv_path)
        prior = hash_sets([locdir / f"{t}.tsv" for t in unit["prior"]])
        here: set[str] = set()
        for lineno, raw in read_lines(tsv_path, unit["start"], unit["end"], unit["line"]):
            if not raw.strip():
                continue
            where = f"commonvoice:{loc}/{tsv}.tsv:{lineno}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield Reject(where, f"{tsv}.tsv line {lineno} is not valid UTF-8")
                continue
            fields = text.split("\t")
            if len(fields) != len(header):
                yield Reject(where, f"bad metadata row (corrupt tsv line): {len(fields)} fields where the "
                                    f"header of {tsv}.tsv has {len(header)}")
                continue
            rec = dict(zip(header, fields))
            pv = rec["path"].strip()
            if not pv:
                yield Reject(where, f"bad metadata row: empty path in {tsv}.tsv")
                continue
            if pv in here or (prior and listed_in(prior, pv)):
                continue  # the same clip from an earlier chosen tsv (or line): kept once
            here.add(pv)
            yield self._row(locdir, loc, tsv, rec, pv)

    def _row(self, locdir: Path, loc: str, tsv: str, rec: dict, pv: str) -> dict | Reject:
        cid = f"commonvoice:{loc}/{clip_stem(pv)}"
        sentence = rec["sentence"].strip()
        if not sentence:
            return Reject(cid, "no transcript: empty sentence")
        client = rec["client_id"].strip()
        try:
            info = probe_audio(clip_file(locdir, pv))
        except ProbeError as exc:
            return Reject(cid, str(exc))
        attrs = {
            "up_votes": _int_or_raw(rec.get("up_votes", "").strip()),
            "down_votes": _int_or_raw(rec.get("down_votes", "").strip()),
            "age": rec.get("age", "").strip(),
            "gender": rec.get("gender", "").strip(),
            "accents": rec.get("accents", rec.get("accent", "")).strip(),
            "variant": rec.get("variant", "").strip(),
            "locale": rec.get("locale", "").strip() or loc,
            "tsv": tsv,
        }
        for extra in ("sentence_id", "sentence_domain", "segment"):
            if rec.get(extra, "").strip():
                attrs[extra] = rec[extra].strip()
        return clip_row(
            id=cid, corpus=self.corpus, kind="speech", path=str(clip_file(locdir, pv)),
            duration_s=info.duration_s, sample_rate=info.sample_rate, language=bcp47(attrs["locale"]),
            text=sentence, speaker=client, license=self.license,
            split_group=f"commonvoice:{client}" if client else cid,
            attrs=json.dumps(attrs, sort_keys=True, ensure_ascii=False),
        )
