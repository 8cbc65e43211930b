"""Hugging Face ``datasets`` on disk: what ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``
write (``state.json``, ``dataset_info.json``, ``data-NNNNN-of-NNNNN.arrow`` Arrow IPC streams;
a DatasetDict adds ``dataset_dict.json`` and one such folder per split) and folders of Parquet
shards as on the Hub (``data/<split>-NNNNN-of-NNNNN.parquet``) or from ``Dataset.to_parquet``.

Audio columns are ``datasets.Audio`` values stored as a struct ``{bytes: binary, path: string}``:
usually the encoded file itself is in ``bytes`` and ``path`` is only its original name.
StreamAudio reads clips from files, so embedded bytes are written out once, unchanged (no
decoding, no re-encoding), to ``<extract_dir>/<data file>/<row>-<sha1 of the bytes>.<ext>`` and
the clip row points there; see ``HuggingFace`` for the cost. Nothing here imports ``datasets``
(or torch/torchcodec): the files are read with pyarrow, the audio with soundfile.

One work unit per Arrow record batch or Parquet row group (``datasets`` writes audio in batches
of about 100 rows), so only one batch of audio bytes is in memory at a time.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from .audiofolder import (BASE_OPTIONS, COLUMN_OPTIONS, COLUMN_OPTIONS_DOC, DEFAULT_LICENSE, SPLIT_NAMES, Columns,
                          attrs_json, check_option_keys, generic_kind, generic_license, generic_provides, map_fields,
                          resolve_columns, split_group_for, visible_walk)
from .base import ANY_KIND, Adapter, LayoutError, ProbeError, Reject, clip_row, probe_audio, register_adapter

EXTRACT_DIR = ".streamaudio-extracted"
ROWS_PER_UNIT = 1000  # rows per work unit (consecutive row groups / record batches)
READ_ROWS = 64  # rows decoded to Python at a time
AUDIO_EXTS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".aiff", ".aif", ".au", ".caf", ".w64", ".rf64")
_SHARD = re.compile(r"^(?P<split>.+?)-\d{5}-of-\d{5}")


def sniff_ext(data: bytes, path_hint: str | None) -> str:
    """The file extension for encoded audio bytes, from their magic number (the original
    path's extension when the bytes say nothing, else ".bin")."""
    head = data[:64]
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return ".wav"
    if head[:4] == b"fLaC":
        return ".flac"
    if head[:4] == b"OggS":
        return ".opus" if b"OpusHead" in head else ".ogg"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return ".mp3"
    if head[:4] == b"FORM":
        return ".aiff"
    suffix = PurePosixPath(path_hint or "").suffix.lower()
    return suffix if suffix in AUDIO_EXTS else ".bin"


def _arrow_batches(path: Path) -> list[pa.RecordBatch]:
    """Record batches of an Arrow IPC stream (what ``datasets`` writes) or IPC file,
    memory-mapped (zero-copy: the list costs no resident memory)."""
    return _opened(str(path), "arrow")[1]


@functools.lru_cache(maxsize=4)
def _opened_cached(path: str, fmt: str, size: int, mtime_ns: int):
    if fmt == "parquet":
        meta = pq.ParquetFile(path).metadata  # the footer: parsed once per file, not per unit
        return meta.schema.to_arrow_schema(), meta
    source = pa.memory_map(path)
    try:
        reader = pa.ipc.open_stream(source)
        return reader.schema, list(reader)
    except pa.ArrowInvalid:
        reader = pa.ipc.open_file(source)
        return reader.schema, [reader.get_batch(i) for i in range(reader.num_record_batches)]


def _opened(path: str, fmt: str):
    """(schema, parquet footer or record batches) of a data file, cached per process by
    (path, size, mtime): a file's units run one after another in a worker."""
    st = os.stat(path)
    return _opened_cached(path, fmt, st.st_size, st.st_mtime_ns)


def _schema(path: Path, fmt: str) -> pa.Schema:
    return _opened(str(path), fmt)[0]


def _features(schema: pa.Schema, info_json: Path | None) -> dict:
    """The ``datasets`` Features (as JSON) stored in the schema metadata, or in dataset_info.json."""
    meta = schema.metadata or {}
    if b"huggingface" in meta:
        try:
            return json.loads(meta[b"huggingface"]).get("info", {}).get("features") or {}
        except ValueError:
            pass
    if info_json is not None and info_json.is_file():
        try:
            return json.loads(info_json.read_text()).get("features") or {}
        except ValueError:
            pass
    return {}


def _class_names(feature: Any) -> list[str] | None:
    """ClassLabel names of a feature or of the items of a List/Sequence feature."""
    if isinstance(feature, dict):
        if feature.get("_type") == "ClassLabel":
            return list(feature.get("names") or [])
        if feature.get("_type") in ("Sequence", "List", "LargeList"):
            return _class_names(feature.get("feature"))
    if isinstance(feature, list) and len(feature) == 1:
        return _class_names(feature[0])
    return None


@register_adapter
class HuggingFace(Adapter):
    __doc__ = """A ``datasets`` dataset on disk: a ``save_to_disk`` Dataset or DatasetDict folder, a
    folder of Parquet shards, or a folder holding several of these (each is found and read).

    Clip ids are ``hf:<data file under root, without extension>:<row in that file>`` (or
    ``hf:<value>`` with ``id_column``); a split is the Dataset's own (state.json ``_split``), its
    folder name, or the ``<split>-NNNNN-of-NNNNN`` prefix of a Parquet shard.

    Embedded audio: each row's ``bytes`` are written, as they are, to
    ``<extract_dir>/<data file>/<row:08d>-<sha1[:12]>.<ext>`` (the extension from the bytes'
    magic number), through a temporary name and a rename, so concurrent scans and re-scans are
    safe and a re-scan reuses the files. The disk cost is one copy of the dataset's audio, at
    its stored (compressed) size: about the size of the dataset's Arrow/Parquet files. A dataset
    that changes leaves stale files behind: delete the folder to reclaim them. Bytes soundfile
    cannot read are a reject (nothing is left on disk). Rows without bytes use ``path`` when it
    names a file (absolute, or relative to the data file's folder or to root).

    Options:

    - ``kind`` (required): speech, sound, music, noise, rir or text (text: no audio is read,
      rows carry only text).
    - ``license``: the licence string rows carry (default "unknown: set options.license").
    - ``format``: ``auto`` (default: every save_to_disk dataset and Parquet file under root),
      ``arrow`` or ``parquet`` (only those).
    - ``splits``: only these splits (e.g. ``[train, test]``).
    - ``audio_column``: the audio column (default: the one whose feature is ``Audio``, else a
      column ``audio``, else the first ``{bytes, path}`` struct column).
    - ``extract_dir``: where embedded audio is written (default ``<root>/.streamaudio-extracted``;
      a relative path is relative to root). It must be writable; it is not part of the
      listing that decides when the corpus is rescanned.
    """ + COLUMN_OPTIONS_DOC

    corpus = "hf"
    kind = ANY_KIND
    license = DEFAULT_LICENSE
    version = "1"
    expected_layout = ("a Hugging Face datasets folder: save_to_disk output (state.json, dataset_info.json, "
                       "data-NNNNN-of-NNNNN.arrow; a DatasetDict adds dataset_dict.json and one folder per split) "
                       "and/or *.parquet shards (e.g. data/<split>-NNNNN-of-NNNNN.parquet) with an Audio column")
    OPTIONS = BASE_OPTIONS + COLUMN_OPTIONS + ("format", "splits", "audio_column", "extract_dir")

    # -------------------------------------------------------------- options
    def license_for(self, options: dict) -> str:
        return generic_license(options)

    def kind_for(self, options: dict) -> str:
        return generic_kind(self.corpus, options, self.expected_layout)

    def provides_for(self, options: dict) -> frozenset[str]:
        return generic_provides(self.kind_for(options), options)

    def _extract_dir(self, root: Path, options: dict) -> Path:
        d = Path(options.get("extract_dir") or EXTRACT_DIR)
        return d if d.is_absolute() else root / d

    # -------------------------------------------------------------- discovery
    def _data_files(self, root: Path, options: dict) -> list[dict]:
        """Every data file, in order: {"rel", "format", "split", "info"} (info: dataset_info.json or None)."""
        fmt = options.get("format") or "auto"
        if fmt not in ("auto", "arrow", "parquet"):
            raise LayoutError(f"hf: options.format must be auto, arrow or parquet, got {fmt!r}")
        out = []
        for d, files in visible_walk(root):
            if "state.json" in files:
                if fmt == "parquet":
                    continue
                try:
                    state = json.loads((d / "state.json").read_text())
                    names = [f["filename"] for f in state["_data_files"]]
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    raise LayoutError(f"hf: {d / 'state.json'} is not a datasets state file ({exc}). "
                                      f"Expected layout: {self.expected_layout}") from None
                split = state.get("_split") or (d.name if d != root else "")
                for name in names:
                    out.append({"rel": (d / name).relative_to(root).as_posix(), "format": "arrow", "split": split,
                                "info": (d / "dataset_info.json").relative_to(root).as_posix()})
                continue
            if fmt == "arrow":
                continue
            for name in files:
                if name.endswith(".parquet"):
                    m = _SHARD.match(name)
                    split = m.group("split") if m else (d.name if d.name.lower() in SPLIT_NAMES else "")
                    out.append({"rel": (d / name).relative_to(root).as_posix(), "format": "parquet", "split": split,
                                "info": None})
        wanted = options.get("splits")
        if wanted:
            out = [f for f in out if f["split"] in wanted]
        return out

    def check_layout(self, root: Path, options: dict) -> None:
        options = options or {}
        if not root.is_dir():
            raise LayoutError(f"hf: {root} is not a folder. Expected layout: {self.expected_layout}")
        files = self._data_files(root, options)
        if not files:
            raise LayoutError(f"hf: no save_to_disk dataset (state.json + data-*.arrow) or *.parquet file under {root}"
                              f"{' for splits ' + str(options['splits']) if options.get('splits') else ''}. "
                              f"Expected layout: {self.expected_layout}")
        check_option_keys(self.corpus, options, self.OPTIONS)
        kind = self.kind_for(options)
        for f in files:
            self._columns(root, f, kind, options)
        if kind != "text":
            d = self._extract_dir(root, options)
            probe = d
            while not probe.exists() and probe != probe.parent:
                probe = probe.parent
            if not os.access(probe, os.W_OK):
                raise LayoutError(f"hf: cannot write embedded audio to {d} ({probe} is not writable): "
                                  f"set options.extract_dir to a writable folder")

    def _columns(self, root: Path, f: dict, kind: str, options: dict) -> tuple[str | None, Columns]:
        path = root / f["rel"]
        try:
            schema = _schema(path, f["format"])
        except (OSError, pa.ArrowException) as exc:
            raise LayoutError(f"hf: cannot read {f['rel']} as {f['format']} ({exc}). "
                              f"Expected layout: {self.expected_layout}") from None
        features = _features(schema, root / f["info"] if f["info"] else None)
        names = list(schema.names)
        audio = None
        if kind != "text":
            audio = options.get("audio_column")
            if audio:
                if audio not in names:
                    raise LayoutError(f"hf: options.audio_column {audio!r} is not a column of {f['rel']} "
                                      f"(it has {names}). Expected layout: {self.expected_layout}")
            else:
                audio = next((c for c in names if isinstance(features.get(c), dict)
                              and features[c].get("_type") == "Audio"), None)
                structs = [c for c in names if pa.types.is_struct(schema.field(c).type)
                           and {"bytes", "path"} <= {schema.field(c).type.field(i).name
                                                     for i in range(schema.field(c).type.num_fields)}]
                if audio is None:
                    audio = "audio" if "audio" in structs else (structs[0] if structs else None)
                if audio is None:
                    raise LayoutError(f"hf: {f['rel']} has no Audio column (columns {names}): name it with "
                                      f"options.audio_column. Expected layout: {self.expected_layout}")
        cols = resolve_columns(self.corpus, kind, options, names, f["rel"], self.expected_layout)
        for c in cols.used():
            names_ = _class_names(features.get(c))
            if names_ is not None:
                cols.class_names[c] = names_
        return audio, cols

    def listing_roots(self, root: Path, options: dict) -> list[Path]:
        """The data files and their json companions: not root, which holds the extracted audio."""
        out = []
        for f in self._data_files(root, options):
            p = root / f["rel"]
            out.append(p)
            for name in ("state.json", "dataset_info.json"):
                if f["format"] == "arrow" and (p.parent / name).is_file():
                    out.append(p.parent / name)
        return list(dict.fromkeys(out))

    def units(self, root: Path, options: dict) -> list[dict]:
        """Runs of consecutive row groups (record batches) of ROWS_PER_UNIT rows or more: a
        writer's groups can be a few rows each, and a unit per group would be a task per group."""
        out = []
        for f in self._data_files(root, options):
            path = root / f["rel"]
            if f["format"] == "parquet":
                meta = _opened(str(path), "parquet")[1]
                sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
            else:
                sizes = [b.num_rows for b in _arrow_batches(path)]
            first = start = rows = 0
            for k, n in enumerate(sizes):
                rows += n
                if rows >= ROWS_PER_UNIT or k == len(sizes) - 1:
                    if rows:
                        out.append({**f, "batches": [start, k + 1], "first": first})
                    first, start, rows = first + rows, k + 1, 0
        return out

    # -------------------------------------------------------------- rows
    def _read(self, path: Path, unit: dict, columns: list[str]) -> Iterator[dict]:
        """The unit's rows, READ_ROWS at a time: embedded audio bytes of a whole unit could be
        gigabytes."""
        lo, hi = unit["batches"]
        if unit["format"] == "parquet":
            meta = _opened(str(path), "parquet")[1]
            # pre_buffer would read every row group of the unit at once (measured: +140 MB
            # anonymous memory at 1,000 rows of embedded audio)
            for batch in pq.ParquetFile(path, metadata=meta, pre_buffer=False).iter_batches(
                    batch_size=READ_ROWS, row_groups=range(lo, hi), columns=columns):
                yield from batch.to_pylist()
            return
        batches = _arrow_batches(path)
        if hi > len(batches):
            raise LayoutError(f"hf: {unit['rel']} has {len(batches)} record batches, not {hi} (changed since the listing?)")
        for batch in batches[lo:hi]:
            batch = batch.select(columns)
            for at in range(0, batch.num_rows, READ_ROWS):
                yield from batch.slice(at, READ_ROWS).to_pylist()

    def scan_unit(self, root: Path, options: dict, unit: dict) -> Iterator[dict | Reject]:
        kind = self.kind_for(options)
        audio_col, cols = self._columns(root, unit, kind, options)
        lic = generic_license(options)
        path = root / unit["rel"]
        stem = unit["rel"][: -len(PurePosixPath(unit["rel"]).suffix)]
        columns = list(dict.fromkeys([c for c in (audio_col, *cols.used()) if c]))
        extract = self._extract_dir(root, options)
        for i, rec in enumerate(self._read(path, unit, columns)):
            row = unit["first"] + i
            where = f"{stem}:{row}"
            fields = map_fields(rec, cols)
            if isinstance(fields, str):
                yield Reject(f"hf:{where}", fields)
                continue
            cid = f"hf:{fields['id']}" if fields.get("id") else f"hf:{where}"
            attrs = {"split": unit["split"], "file": unit["rel"], "row": row}
            common = dict(id=cid, corpus=self.corpus, kind=kind, language=fields["language"],
                          text=fields.get("text", ""), speaker=fields.get("speaker", ""),
                          labels=fields.get("labels", []), caption=fields.get("caption", ""), license=lic,
                          split_group=split_group_for(self.corpus, fields, where))
            if kind == "text":
                yield clip_row(**common, attrs=attrs_json(attrs, fields.get("attrs", {})))
                continue
            got = self._audio_file(rec.get(audio_col), root, path.parent, extract / stem, row)
            if isinstance(got, str):
                yield Reject(cid, got)
                continue
            audio_path, original, info = got
            attrs["audio_path"] = original
            yield clip_row(**common, path=str(audio_path), duration_s=info.duration_s, sample_rate=info.sample_rate,
                           attrs=attrs_json(attrs, fields.get("attrs", {})))

    def _audio_file(self, value: Any, root: Path, data_dir: Path, out_dir: Path, row: int):
        """(file, original path, AudioInfo) of one Audio value, or the reason it is unusable."""
        if isinstance(value, str):  # a plain path column
            value = {"bytes": None, "path": value}
        if not isinstance(value, dict):
            return "no audio: the audio value is empty" if value is None else \
                f"no audio: the audio value is a {type(value).__name__}, not {{bytes, path}}"
        data, original = value.get("bytes"), value.get("path") or ""
        if data:
            target = out_dir / f"{row:08d}-{hashlib.sha1(data).hexdigest()[:12]}{sniff_ext(data, original)}"
            try:
                if target.is_file() and target.stat().st_size == len(data):
                    return target.resolve(), original, probe_audio(target)
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp{target.suffix}")
                tmp.write_bytes(data)
                try:
                    info = probe_audio(tmp)
                except ProbeError as exc:
                    tmp.unlink(missing_ok=True)
                    raise ProbeError(str(exc).replace(str(tmp), original or "the bytes")) from None
                tmp.replace(target)
                return target.resolve(), original, info
            except ProbeError as exc:
                return f"embedded audio bytes: {exc}"
        if not original:
            return "no audio: the audio value has neither bytes nor a path"
        p = Path(original)
        for cand in ([p] if p.is_absolute() else [data_dir / p, root / p]):
            if cand.is_file():
                try:
                    return cand.resolve(), original, probe_audio(cand)
                except ProbeError as exc:
                    return str(exc)
        return f"audio file missing: {original} (the row has no embedded bytes)"
