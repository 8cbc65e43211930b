"""Hugging Face AudioFolder: audio files described by ``metadata.csv``, ``metadata.jsonl`` or
``metadata.parquet`` files (a ``file_name`` column with each file's path relative to the
metadata file), optionally one folder per split (``train/``, ``test/``, ...).

This module also holds what the three generic adapters (audiofolder, hf, lhotse) share: the
catalog options that say what a corpus is (``kind``, ``license``, ``language``) and which of its
columns fill which clip columns, and the BCP-47 spelling of language tags.

Conventions followed (datasets 5.x, ``packaged_modules/folder_based_builder``): metadata file
names ``metadata.csv|jsonl|parquet``; the audio column is ``file_name`` (or ``<name>_file_name``)
and holds a relative path, resolved against the metadata file's own folder; a path that is
absolute or leaves that folder is refused, as ``datasets`` refuses it. Unlike ``datasets``, which
needs every metadata file of a dataset in one format, each folder here may use its own.

One work unit per block of metadata records (byte ranges of csv/jsonl files, row groups of
parquet ones), so a metadata file with millions of rows is never read whole.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import pyarrow.parquet as pq

from .base import (ANY_KIND, CLIP_KINDS, bcp47, Adapter, LayoutError, ProbeError, Reject, clip_row, probe_audio,
                   register_adapter)

# ---------------------------------------------------------------- shared by the generic adapters
DEFAULT_LICENSE = "unknown: set options.license"
AUTO_TEXT_COLUMNS = ("text", "transcription", "sentence", "transcript")
BASE_OPTIONS = ("kind", "license")
COLUMN_OPTIONS = ("text_column", "labels_column", "labels_separator", "speaker_column", "language",
                  "language_column", "split_group_column", "caption_column", "id_column", "attrs_columns")
SPLIT_NAMES = ("train", "training", "test", "testing", "validation", "valid", "val", "dev", "eval", "evaluation")

COLUMN_OPTIONS_DOC = """
    Column options (each names a column of the dataset; a named column that is absent is a
    LayoutError listing the columns there are):

    - ``text_column``: the transcript. Default for kind speech and text: the first of ``text``,
      ``transcription``, ``sentence``, ``transcript`` that exists (none: LayoutError); for other
      kinds no text. ``text_column: null`` scans speech without transcripts. When a text column
      is used, a row whose text is null is rejected ("no transcript"), an empty one too
      ("empty transcript"); the source then provides ``text``.
    - ``speaker_column``: the speaker; provides ``speaker``; an empty value is a reject.
    - ``labels_column``: labels (a string, a list of strings, or ClassLabel integers, which are
      turned into their names); provides ``labels``; an empty value is a reject.
      ``labels_separator``: split a string value on it (e.g. "," for "Dog,Bark").
    - ``language``: a fixed BCP-47 tag for every row (e.g. "en"); ``language_column``: a column
      holding the language (ISO-looking codes are written as BCP-47: "en_us" -> "en-US",
      "eng" -> "en"; "English" -> "en"; other values as given), falling back to ``language``.
      Neither: language "".
    - ``split_group_column``: rows that share its value land in the same train/validation/test
      split. Default: the speaker when ``speaker_column`` is set, else the audio file.
    - ``caption_column``: a free-text caption. ``id_column``: clip ids from this column
      (``<corpus>:<value>``) instead of from the file/row. ``attrs_columns``: a list of
      columns copied into the row's ``attrs`` JSON.
"""

def check_option_keys(corpus: str, options: dict, allowed: tuple[str, ...]) -> None:
    if not isinstance(options, dict):
        raise LayoutError(f"{corpus}: options must be a mapping, got {type(options).__name__}")
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise LayoutError(f"{corpus}: unknown option(s) {unknown}; the options are {sorted(allowed)}")


def generic_kind(corpus: str, options: dict, layout: str, kinds: tuple[str, ...] = CLIP_KINDS) -> str:
    """The catalog's ``options.kind``: required, one of ``kinds``."""
    kind = (options or {}).get("kind")
    if kind is None:
        raise LayoutError(f"{corpus}: options.kind is required (one of {', '.join(kinds)}): a generic adapter "
                          f"cannot tell what its clips are. Expected layout: {layout}")
    if kind not in kinds:
        raise LayoutError(f"{corpus}: options.kind {kind!r} is not one of {', '.join(kinds)}. "
                          f"Expected layout: {layout}")
    return kind


def generic_license(options: dict) -> str:
    lic = (options or {}).get("license")
    return str(lic) if lic else DEFAULT_LICENSE


def text_mapped(kind: str, options: dict) -> bool:
    if "text_column" in options:
        return bool(options["text_column"])
    return kind in ("speech", "text")


def generic_provides(kind: str, options: dict) -> frozenset[str]:
    facts = set()
    if text_mapped(kind, options):
        facts.add("text")
    if options.get("speaker_column"):
        facts.add("speaker")
    if options.get("labels_column"):
        facts.add("labels")
    return frozenset(facts)


@dataclass
class Columns:
    """Which source column fills which clip column (None: not mapped)."""

    text: str | None = None
    speaker: str | None = None
    labels: str | None = None
    labels_separator: str | None = None
    language: str = ""  # the fixed tag
    language_column: str | None = None
    split_group: str | None = None
    caption: str | None = None
    id: str | None = None
    attrs: list[str] = field(default_factory=list)
    class_names: dict[str, list[str]] = field(default_factory=dict)  # ClassLabel names by column

    def used(self) -> list[str]:
        cols = [self.text, self.speaker, self.labels, self.language_column, self.split_group, self.caption, self.id,
                *self.attrs]
        return list(dict.fromkeys(c for c in cols if c))


def resolve_columns(corpus: str, kind: str, options: dict, available: list[str], where: str, layout: str) -> Columns:
    """The column mapping of ``options`` checked against the columns ``where`` has."""
    avail = list(available)

    def named(opt: str) -> str | None:
        col = options.get(opt)
        if col is None or col == "":
            return None
        if not isinstance(col, str):
            raise LayoutError(f"{corpus}: options.{opt} must be a column name, got {col!r}")
        if col not in avail:
            raise LayoutError(f"{corpus}: options.{opt} names column {col!r}, but {where} has columns {avail}. "
                              f"Expected layout: {layout}")
        return col

    text = named("text_column")
    if "text_column" not in options and kind in ("speech", "text"):
        text = next((c for c in AUTO_TEXT_COLUMNS if c in avail), None)
        if text is None:
            raise LayoutError(f"{corpus}: {where} has no transcript column (looked for {list(AUTO_TEXT_COLUMNS)}; "
                              f"it has {avail}): set options.text_column, or text_column: null to use {kind} "
                              f"without transcripts. Expected layout: {layout}")
    attrs = options.get("attrs_columns") or []
    if not isinstance(attrs, list) or not all(isinstance(a, str) for a in attrs):
        raise LayoutError(f"{corpus}: options.attrs_columns must be a list of column names")
    missing = [a for a in attrs if a not in avail]
    if missing:
        raise LayoutError(f"{corpus}: options.attrs_columns names {missing}, but {where} has columns {avail}")
    sep = options.get("labels_separator")
    if sep is not None and (not isinstance(sep, str) or not sep):
        raise LayoutError(f"{corpus}: options.labels_separator must be a non-empty string")
    lang = options.get("language")
    if lang is not None and not isinstance(lang, str):
        raise LayoutError(f"{corpus}: options.language must be a BCP-47 tag such as 'en', got {lang!r}")
    return Columns(text=text, speaker=named("speaker_column"), labels=named("labels_column"), labels_separator=sep,
                   language=bcp47(lang), language_column=named("language_column"),
                   split_group=named("split_group_column"), caption=named("caption_column"), id=named("id_column"),
                   attrs=attrs)


def _scalar(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    return str(v).strip()


def _labels(v: Any, sep: str | None, names: list[str] | None) -> list[str]:
    def one(x) -> str:
        if names is not None and isinstance(x, int) and not isinstance(x, bool) and 0 <= x < len(names):
            return names[x]
        return _scalar(x)

    if v is None:
        return []
    if isinstance(v, (list, tuple)):
        out = [one(x) for x in v]
    elif isinstance(v, str) and sep:
        out = [s.strip() for s in v.split(sep)]
    else:
        out = [one(v)]
    return [x for x in out if x]


def map_fields(rec: dict, cols: Columns) -> dict | str:
    """Clip columns from one source record, or the reason it cannot be used."""
    out: dict[str, Any] = {}
    if cols.text:
        v = rec.get(cols.text)
        if v is None:
            return f"no transcript: column {cols.text!r} is null or absent"
        text = v.strip() if isinstance(v, str) else _scalar(v)
        if not text:
            return f"empty transcript (column {cols.text!r})"
        out["text"] = text
    if cols.speaker:
        spk = _scalar(rec.get(cols.speaker))
        if not spk:
            return f"empty speaker (column {cols.speaker!r})"
        out["speaker"] = spk
    if cols.labels:
        labels = _labels(rec.get(cols.labels), cols.labels_separator, cols.class_names.get(cols.labels))
        if not labels:
            return f"empty labels (column {cols.labels!r})"
        out["labels"] = labels
    lang = bcp47(rec.get(cols.language_column)) if cols.language_column else ""
    out["language"] = lang or cols.language
    if cols.caption:
        out["caption"] = _scalar(rec.get(cols.caption))
    out["group"] = _scalar(rec.get(cols.split_group)) if cols.split_group else ""
    if cols.id:
        cid = _scalar(rec.get(cols.id))
        if not cid:
            return f"empty id (column {cols.id!r})"
        out["id"] = cid
    if cols.attrs:
        out["attrs"] = {a: _jsonable(rec.get(a)) for a in cols.attrs}
    return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return str(v)


def split_group_for(corpus: str, fields: dict, fallback: str) -> str:
    if fields.get("group"):
        return f"{corpus}:group:{fields['group']}"
    if fields.get("speaker"):
        return f"{corpus}:speaker:{fields['speaker']}"
    return f"{corpus}:{fallback}"


def attrs_json(*parts: dict) -> str:
    merged: dict = {}
    for p in parts:
        merged.update({k: v for k, v in p.items() if v not in (None, "")})
    return json.dumps(merged, sort_keys=True, ensure_ascii=False)


def split_of(rel_parts: tuple[str, ...]) -> str:
    """The split a file belongs to, from the first folder of its path named like one."""
    for p in rel_parts:
        if p.lower() in SPLIT_NAMES:
            return p
    return ""


def visible_walk(base: Path) -> Iterator[tuple[Path, list[str]]]:
    """(folder, sorted file names) for every folder under ``base``, hidden ones skipped, in order."""
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        yield Path(dirpath), sorted(f for f in filenames if not f.startswith("."))


# ---------------------------------------------------------------- the AudioFolder adapter
METADATA_NAMES = ("metadata.csv", "metadata.jsonl", "metadata.parquet")
RECORDS_PER_UNIT = 256


@register_adapter
class AudioFolder(Adapter):
    __doc__ = """A Hugging Face AudioFolder dataset (``load_dataset("audiofolder", data_dir=...)``).

    Layout: ``<root>/[<split>/]metadata.csv|metadata.jsonl|metadata.parquet`` plus the audio
    files they name. Each metadata row is one clip: ``file_name`` (or the one
    ``<name>_file_name`` column) gives the file relative to the metadata file's folder. Audio
    is read with soundfile (wav, flac, mp3, ogg/opus, ...); the whole file is the clip. Clip
    ids are ``audiofolder:<path of the audio file under root>``.

    Options:

    - ``kind`` (required): speech, sound, music, noise or rir.
    - ``license``: the licence string rows carry (default "unknown: set options.license").
    - ``file_column``: the metadata column with the audio path (default ``file_name``, or the
      single ``*_file_name`` column).
    - ``splits``: only these split folders (e.g. ``[train]``); a metadata file's split is the
      first folder on its path named train/test/validation/valid/dev/eval/...
    """ + COLUMN_OPTIONS_DOC

    corpus = "audiofolder"
    kind = ANY_KIND
    license = DEFAULT_LICENSE
    version = "1"
    expected_layout = ("a Hugging Face AudioFolder: <root>/[<split>/]metadata.csv, metadata.jsonl or metadata.parquet "
                       "with a file_name column naming audio files relative to the metadata file")
    OPTIONS = BASE_OPTIONS + COLUMN_OPTIONS + ("file_column", "splits")
    KINDS = ("speech", "sound", "music", "noise", "rir")

    # -------------------------------------------------------------- options
    def license_for(self, options: dict) -> str:
        return generic_license(options)

    def kind_for(self, options: dict) -> str:
        return generic_kind(self.corpus, options, self.expected_layout, self.KINDS)

    def provides_for(self, options: dict) -> frozenset[str]:
        return generic_provides(self.kind_for(options), options)

    def _metadata_files(self, root: Path, options: dict) -> list[Path]:
        found = []
        for d, files in visible_walk(root):
            here = [d / n for n in METADATA_NAMES if n in files]
            if len(here) > 1:
                raise LayoutError(f"audiofolder: {d} holds {len(here)} metadata files ({[p.name for p in here]}); "
                                  f"keep one. Expected layout: {self.expected_layout}")
            found += here
        wanted = options.get("splits")
        if wanted:
            found = [p for p in found if split_of(p.relative_to(root).parts[:-1]) in wanted]
        return found

    def check_layout(self, root: Path, options: dict) -> None:
        if not root.is_dir():
            raise LayoutError(f"audiofolder: {root} is not a folder. Expected layout: {self.expected_layout}")
        metas = self._metadata_files(root, options or {})
        if not metas:
            raise LayoutError(f"audiofolder: no {', '.join(METADATA_NAMES)} under {root}"
                              f"{' in splits ' + str(options.get('splits')) if options and options.get('splits') else ''}. "
                              f"Expected layout: {self.expected_layout}")
        check_option_keys(self.corpus, options, self.OPTIONS)
        kind = self.kind_for(options)
        for meta in metas:
            header = self._header(meta)
            self._columns(root, meta, header, kind, options)

    def _columns(self, root: Path, meta: Path, header: list[str], kind: str, options: dict) -> tuple[str, Columns]:
        where = str(meta.relative_to(root))
        file_col = options.get("file_column")
        if file_col:
            if file_col not in header:
                raise LayoutError(f"audiofolder: options.file_column {file_col!r} is not a column of {where} "
                                  f"(it has {header}). Expected layout: {self.expected_layout}")
        elif "file_name" in header:
            file_col = "file_name"
        else:
            cands = [c for c in header if c.endswith("_file_name")]
            if len(cands) != 1:
                raise LayoutError(f"audiofolder: {where} has no file_name column (columns {header}); name it with "
                                  f"options.file_column. Expected layout: {self.expected_layout}")
            file_col = cands[0]
        return file_col, resolve_columns(self.corpus, kind, options, header, where, self.expected_layout)

    def _header(self, meta: Path) -> list[str]:
        """The metadata file's columns: the csv header, the keys of the first jsonl record, the parquet schema."""
        try:
            if meta.suffix == ".parquet":
                return list(pq.ParquetFile(meta).schema_arrow.names)
            with open(meta, "rb") as f:
                if meta.suffix == ".csv":
                    first = f.readline().decode("utf-8-sig")
                    return next(csv.reader([first]), [])
                for raw in f:  # the first line that is a JSON object (bad lines are rejects later)
                    try:
                        obj = json.loads(raw.decode("utf-8-sig"))
                    except ValueError:  # not UTF-8, not JSON, blank
                        continue
                    if isinstance(obj, dict):
                        return list(obj)
        except (OSError, ValueError) as exc:
            raise LayoutError(f"audiofolder: cannot read the columns of {meta}: {exc}. "
                              f"Expected layout: {self.expected_layout}") from None
        return []

    # -------------------------------------------------------------- units
    def units(self, root: Path, options: dict) -> list[dict]:
        out = []
        for meta in self._metadata_files(root, options):
            rel = meta.relative_to(root).as_posix()
            header = self._header(meta)
            if meta.suffix == ".parquet":
                pf = pq.ParquetFile(meta)
                row = 0
                for g in range(pf.num_row_groups):
                    out.append({"meta": rel, "header": header, "group": g, "first": row})
                    row += pf.metadata.row_group(g).num_rows
            else:
                for start, end, line in self._blocks(meta):
                    out.append({"meta": rel, "header": header, "start": start, "end": end, "line": line})
        return out

    def _body_start(self, meta: Path) -> tuple[int, int]:
        """(byte offset, line number before it) where the records start: after a csv's header line."""
        if meta.suffix != ".csv":
            return 0, 0
        with open(meta, "rb") as f:
            f.readline()
            return f.tell(), 1

    def _blocks(self, meta: Path) -> Iterator[tuple[int, int, int]]:
        """(start byte, end byte, line number before start) of blocks of RECORDS_PER_UNIT records;
        a csv block never splits a record that spans lines."""
        size = meta.stat().st_size
        start, line0 = self._body_start(meta)
        n, block_start, block_line = 0, start, line0
        if meta.suffix == ".jsonl":
            with open(meta, "rb") as f:
                line = 0
                for raw in iter(f.readline, b""):
                    line += 1
                    if raw.strip():
                        n += 1
                        if n == RECORDS_PER_UNIT:
                            yield block_start, f.tell(), block_line
                            n, block_start, block_line = 0, f.tell(), line
        else:
            for _line, _rec, offset, line_after in _csv_records(meta, start, size, line0):
                n += 1
                if n == RECORDS_PER_UNIT:
                    yield block_start, offset, block_line
                    n, block_start, block_line = 0, offset, line_after
        if n:
            yield block_start, size, block_line

    # -------------------------------------------------------------- rows
    def _unit_records(self, meta: Path, rel: str, unit: dict) -> Iterator[tuple[str, dict | str]]:
        """(where, record as a dict, or the reason it is unusable) for each record of the unit."""
        if meta.suffix == ".parquet":
            table = pq.ParquetFile(meta).read_row_group(unit["group"])
            for i, rec in enumerate(table.to_pylist()):
                yield f"{rel}:row {unit['first'] + i}", rec
        elif meta.suffix == ".csv":
            header = unit["header"]
            for line, rec, _offset, _after in _csv_records(meta, unit["start"], unit["end"], unit["line"]):
                if isinstance(rec, str):
                    yield f"{rel}:{line}", rec
                elif len(rec) != len(header):
                    yield f"{rel}:{line}", f"malformed metadata row: {len(rec)} fields, the header has {len(header)}"
                else:
                    yield f"{rel}:{line}", dict(zip(header, rec))
        else:
            with open(meta, "rb") as f:
                f.seek(unit["start"])
                line = unit["line"]
                while f.tell() < unit["end"]:
                    raw = f.readline()
                    if not raw:
                        break
                    line += 1
                    if not raw.strip():
                        continue
                    try:
                        obj = json.loads(raw.decode("utf-8-sig" if line == 1 else "utf-8"))
                    except UnicodeDecodeError:
                        yield f"{rel}:{line}", "metadata line is not valid UTF-8"
                        continue
                    except json.JSONDecodeError as exc:
                        yield f"{rel}:{line}", f"metadata line is not JSON ({exc.msg})"
                        continue
                    yield f"{rel}:{line}", obj if isinstance(obj, dict) else "metadata line is not a JSON object"

    def scan_unit(self, root: Path, options: dict, unit: dict) -> Iterator[dict | Reject]:
        rel_meta = unit["meta"]
        meta = root / rel_meta
        kind = self.kind_for(options)
        file_col, cols = self._columns(root, meta, unit["header"], kind, options)
        lic = generic_license(options)
        split = split_of(PurePosixPath(rel_meta).parts[:-1])
        seen: set[str] = set()
        for where, rec in self._unit_records(meta, rel_meta, unit):
            if isinstance(rec, str):
                yield Reject(f"audiofolder:{where}", rec)
                continue
            fname = rec.get(file_col)
            if not isinstance(fname, str) or not fname.strip():
                yield Reject(f"audiofolder:{where}", f"metadata row has no {file_col}")
                continue
            fname = fname.strip()
            sub = PurePosixPath(fname.replace("\\", "/"))
            if sub.is_absolute() or ".." in sub.parts or "://" in fname:
                yield Reject(f"audiofolder:{where}", f"{file_col} {fname!r} is not a relative path inside "
                                                     f"{PurePosixPath(rel_meta).parent}/ (refused, as datasets refuses it)")
                continue
            path = meta.parent / sub
            rel = path.relative_to(root).as_posix()
            fields = map_fields(rec, cols)
            if isinstance(fields, str):
                yield Reject(f"audiofolder:{rel}", fields)
                continue
            cid = f"audiofolder:{fields.get('id') or rel}"
            if cid in seen:
                yield Reject(cid, f"duplicate metadata row for {cid.split(':', 1)[1]} in {rel_meta}")
                continue
            seen.add(cid)
            try:
                info = probe_audio(path)
            except ProbeError as exc:
                yield Reject(cid, str(exc))
                continue
            yield clip_row(
                id=cid, corpus=self.corpus, kind=kind, path=str(path.resolve()), duration_s=info.duration_s,
                sample_rate=info.sample_rate, language=fields["language"], text=fields.get("text", ""),
                speaker=fields.get("speaker", ""), labels=fields.get("labels", []), caption=fields.get("caption", ""),
                license=lic, split_group=split_group_for(self.corpus, fields, f"file:{rel}"),
                attrs=attrs_json({"split": split}, fields.get("attrs", {})),
            )


def _csv_records(meta: Path, start: int, end: int, line0: int) -> Iterator[tuple[int, list[str] | str, int, int]]:
    """(first line number, fields or the reason the record is unusable, byte offset after it, last line
    number) for each non-blank csv record in [start, end). Lines are decoded one by one, so a line
    that is not UTF-8 rejects its record only."""
    with open(meta, "rb") as f:
        f.seek(start)
        src = _Lines(f, end, line0)
        reader = csv.reader(src)
        while True:
            first = src.line + 1
            src.bad = False
            try:
                rec = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield first, f"malformed metadata row ({exc})", f.tell(), src.line
                continue
            if src.bad:
                yield first, "metadata row is not valid UTF-8", f.tell(), src.line
            elif any(c.strip() for c in rec):
                yield first, rec, f.tell(), src.line


class _Lines:
    """Decoded lines of a binary file up to byte ``end``, counting lines and flagging bad UTF-8."""

    def __init__(self, f: io.BufferedReader, end: int, line: int):
        self.f, self.end, self.line, self.bad = f, end, line, False

    def __iter__(self):
        return self

    def __next__(self) -> str:
        if self.f.tell() >= self.end:
            raise StopIteration
        raw = self.f.readline()
        if not raw:
            raise StopIteration
        self.line += 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.bad = True
            return raw.decode("utf-8", "replace")
