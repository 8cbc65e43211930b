"""FMA, the Free Music Archive dataset (github.com/mdeff/fma): Creative Commons music, one MP3
per track, with per-track metadata.

Published layout (checked against the mdeff/fma README and utils.py: ``get_audio_path`` and
``load``), the adapter pointed at the folder that holds both::

    fma_<small|medium|large|full>/<NNN>/<NNNNNN>.mp3   track id zero-padded to 6 digits, folder = its first 3
    fma_metadata/tracks.csv    two column-header rows (group: album/artist/set/track; column name),
                               then a "track_id,,,..." index-name row; read by utils.load as
                               pd.read_csv(index_col=0, header=[0, 1]). List columns (track.genres,
                               track.genres_all, *.tags) hold Python list literals such as "[21, 76]".
    fma_metadata/genres.csv    genre_id,#tracks,parent,title,top_level
    fma_metadata/echonest.csv  optional; three column-header rows (echonest; audio_features, metadata,
                               ranks, social_features, temporal_features; column) then "track_id,,,...":
                               utils.load reads it with header=[0, 1, 2]. Only audio_features/tempo is used.

Which tracks an audio folder holds is tracks.csv's set.subset: fma_small the "small" tracks,
fma_medium "small" and "medium", fma_large and fma_full every track. Option ``size``
(small/medium/large/full) picks the folder; without it the one fma_* folder present is used
(several present: a layout error asks for ``size``).

Work units: record-aligned byte ranges of tracks.csv of TRACKS_PER_UNIT selected tracks,
found by one streaming pass of the listing (the echonest tempos of a unit's tracks ride
along in the unit); a unit re-reads only its own range.

Rows: kind music; labels = the track's top-level genre (track.genre_top) first, then the
titles of all its genres (track.genres_all, file order), without repeats; caption
"<title> by <artist name>"; language = track.language_code where it is a language code;
license = the track's own licence (track.license: each artist chose one); split_group
"fma:artist:<artist id>": an artist's tracks share voice, instruments and production, and
FMA's own train/validation/test split keeps each artist in one set (the mdeff/fma paper),
so grouping by artist (not album) agrees with it and leaks nothing across splits. attrs:
track_id, album_id, album, artist_id, artist, title, genre_top, genres, genres_all (ids),
license, subset, split (FMA's set.split) and tempo (BPM, where echonest.csv has it).

Rejects: a selected track whose mp3 is missing, corrupt or silent; a genres/genres_all field
that is not a list of ids (reason: "unparsable ... not JSON"), genre ids missing from
genres.csv, a track without a licence.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import BinaryIO, Iterator

from .base import Adapter, LayoutError, ProbeError, Reject, clip_row, probe_audio, register_adapter

SIZES = ("small", "medium", "large", "full")
SUBSETS = {"small": {"small"}, "medium": {"small", "medium"}, "large": None, "full": None}  # None: all
TRACKS_PER_UNIT = 128
METADATA = "fma_metadata"
_LANG = re.compile(r"^[a-z]{2,3}$")


def _big_fields() -> None:
    """Artist bios and album notes run past csv's default 128 KiB field limit."""
    if csv.field_size_limit() < 2**26:
        csv.field_size_limit(2**26)


def _records(f: BinaryIO, start: int, end: int | None) -> Iterator[tuple[list[str], int]]:
    """CSV records of f from byte ``start`` (a record boundary) to ``end``, each with the byte
    offset where it ends. Quoted fields may span lines."""
    pos = start
    f.seek(start)

    def lines():
        nonlocal pos
        while end is None or pos < end:
            raw = f.readline()
            if not raw:
                return
            pos += len(raw)
            yield raw.decode("utf-8", "replace")

    for rec in csv.reader(lines()):
        yield rec, pos


def _header(f: BinaryIO, levels: int) -> tuple[list[tuple[str, ...]], int]:
    """The column keys of a pandas multi-row-header CSV (``levels`` header rows, then an optional
    index-name row such as "track_id,,,") and the byte offset where its data starts."""
    rows, data_at = [], 0
    for rec, pos in _records(f, 0, None):
        rows.append(rec)
        data_at = pos
        if len(rows) == levels:
            break
    if len(rows) < levels:
        raise ValueError("file ends inside its header")
    keys = list(zip(*rows))
    # the index-name row: first cell names the index, every other cell is empty
    for rec, pos in _records(f, data_at, None):
        if rec and not rec[0].isdigit() and not any(c.strip() for c in rec[1:]):
            data_at = pos
        break
    return keys, data_at


class _Columns:
    """tracks.csv's (group, name) column keys -> their position in a record."""

    def __init__(self, keys: list[tuple[str, ...]]):
        self.at = {k: i for i, k in enumerate(keys)}

    def get(self, rec: list[str], group: str, name: str) -> str:
        i = self.at.get((group, name))
        return rec[i].strip() if i is not None and i < len(rec) else ""


def _id_list(raw: str) -> list[int] | None:
    try:
        v = json.loads(raw) if raw else []
    except json.JSONDecodeError:
        return None
    if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        return None
    return v


def _int(raw: str) -> int | str:
    try:
        return int(float(raw))
    except ValueError:
        return raw


@register_adapter
class FMA(Adapter):
    corpus = "fma"
    kind = "music"
    license = "per track: the Creative Commons licence its artist chose (track.license); metadata CC-BY-4.0"
    provides = frozenset({"labels"})
    expected_layout = ("fma_metadata/tracks.csv (+ genres.csv, optional echonest.csv) beside "
                       "fma_<small|medium|large|full>/<NNN>/<NNNNNN>.mp3")

    def _size(self, root: Path, options: dict) -> str:
        size = options.get("size")
        if size:
            if size not in SIZES:
                raise LayoutError(f"fma: size {size!r} is not one of {', '.join(SIZES)}. "
                                  f"Expected layout: {self.expected_layout}")
            if not (root / f"fma_{size}").is_dir():
                raise LayoutError(f"fma: no fma_{size}/ folder under {root}. Expected layout: {self.expected_layout}")
            return size
        found = [s for s in SIZES if (root / f"fma_{s}").is_dir()]
        if len(found) != 1:
            what = (f"several audio folders ({', '.join('fma_' + s for s in found)}): set the `size` option"
                    if found else "no fma_small|medium|large|full/ audio folder")
            raise LayoutError(f"fma: {root}: {what}. Expected layout: {self.expected_layout}")
        return found[0]

    def check_layout(self, root: Path, options: dict) -> None:
        meta = root / METADATA
        missing = [n for n in ("tracks.csv", "genres.csv") if not (meta / n).is_file()]
        if missing:
            raise LayoutError(f"fma: {root}: no {', '.join(f'{METADATA}/{n}' for n in missing)}. "
                              f"Expected layout: {self.expected_layout}")
        size = self._size(root, options)
        if next((root / f"fma_{size}").glob("[0-9][0-9][0-9]"), None) is None:
            raise LayoutError(f"fma: fma_{size}/ holds no <NNN>/ folders of mp3s (unzip fma_{size}.zip here). "
                              f"Expected layout: {self.expected_layout}")
        _big_fields()
        with open(meta / "tracks.csv", "rb") as f:
            try:
                keys, _ = _header(f, 2)
            except (ValueError, csv.Error) as exc:
                raise LayoutError(f"fma: {meta / 'tracks.csv'}: {exc}. Expected layout: {self.expected_layout}") from None
        cols = _Columns(keys)
        need = [("track", "genres"), ("track", "title"), ("artist", "id"), ("set", "subset")]
        absent = [f"{g}.{n}" for g, n in need if (g, n) not in cols.at]
        if absent:
            raise LayoutError(f"fma: tracks.csv has no {', '.join(absent)} column (its first two rows must be the "
                              f"column groups and names). Expected layout: {self.expected_layout}")

    def listing_roots(self, root: Path, options: dict) -> list[Path]:
        return [root / METADATA, root / f"fma_{self._size(root, options)}"]

    def _tempos(self, root: Path) -> dict[int, float]:
        path = root / METADATA / "echonest.csv"
        if not path.is_file():
            return {}
        out = {}
        with open(path, "rb") as f:
            keys, data_at = _header(f, 3)
            try:
                i = keys.index(("echonest", "audio_features", "tempo"))
            except ValueError:
                return {}
            for rec, _ in _records(f, data_at, None):
                try:
                    out[int(rec[0])] = round(float(rec[i]), 3)
                except (ValueError, IndexError):
                    continue
        return out

    def units(self, root: Path, options: dict) -> list[dict]:
        _big_fields()
        size = self._size(root, options)
        wanted = SUBSETS[size]
        tempos = self._tempos(root)
        units = []
        with open(root / METADATA / "tracks.csv", "rb") as f:
            keys, data_at = _header(f, 2)
            cols = _Columns(keys)
            start, count, unit_tempo = data_at, 0, {}
            last = data_at
            for rec, end in _records(f, data_at, None):
                last = end
                if not rec or (wanted is not None and cols.get(rec, "set", "subset") not in wanted):
                    continue
                count += 1
                tid = _int(rec[0])
                if tid in tempos:
                    unit_tempo[str(tid)] = tempos[tid]
                if count == TRACKS_PER_UNIT:
                    units.append({"start": start, "end": end, "tempo": unit_tempo})
                    start, count, unit_tempo = end, 0, {}
            if count:
                units.append({"start": start, "end": last, "tempo": unit_tempo})
        return units

    def _genres(self, root: Path) -> dict[int, tuple[str, int]]:
        """genre id -> (title, parent id)."""
        out = {}
        with open(root / METADATA / "genres.csv", newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                try:
                    out[int(row["genre_id"])] = (row["title"].strip(), int(float(row.get("parent") or 0)))
                except (KeyError, ValueError):
                    continue
        return out

    def scan_unit(self, root: Path, options: dict, unit: dict) -> Iterator[dict | Reject]:
        _big_fields()
        size = self._size(root, options)
        wanted = SUBSETS[size]
        audio = root / f"fma_{size}"
        genres = self._genres(root)
        with open(root / METADATA / "tracks.csv", "rb") as f:
            keys, _ = _header(f, 2)
            cols = _Columns(keys)
            for rec, _ in _records(f, unit["start"], unit["end"]):
                if not rec or (wanted is not None and cols.get(rec, "set", "subset") not in wanted):
                    continue
                yield self._track(rec, cols, genres, audio, unit["tempo"])

    def _track(self, rec: list[str], cols: _Columns, genres: dict, audio: Path, tempos: dict) -> dict | Reject:
        tid = _int(rec[0])
        cid = f"fma:{tid}"
        if not isinstance(tid, int):
            return Reject(f"fma:{rec[0][:40]}", f"tracks.csv row with a track_id that is not a number: {rec[0][:40]!r}")
        ids = {}
        for name in ("genres", "genres_all"):
            raw = cols.get(rec, "track", name)
            ids[name] = _id_list(raw)
            if ids[name] is None:
                return Reject(cid, f"unparsable track.{name} field in tracks.csv (not JSON list of genre ids): "
                                   f"{raw[:60]!r}")
        all_ids = ids["genres_all"] or self._with_parents(ids["genres"], genres)
        unknown = sorted({g for g in all_ids + ids["genres"] if g not in genres})
        if unknown:
            return Reject(cid, f"genre id(s) {unknown} not in genres.csv")
        licence = cols.get(rec, "track", "license")
        if not licence:
            return Reject(cid, "no track licence: track.license is empty in tracks.csv")
        tid6 = f"{tid:06d}"
        path = audio / tid6[:3] / f"{tid6}.mp3"
        try:
            info = probe_audio(path)
        except ProbeError as exc:
            return Reject(cid, f"{exc} ({audio.name}/{tid6[:3]}/{tid6}.mp3)")
        top = cols.get(rec, "track", "genre_top")
        labels = [top] if top else []
        for g in all_ids:
            if genres[g][0] not in labels:
                labels.append(genres[g][0])
        title = cols.get(rec, "track", "title")
        artist = cols.get(rec, "artist", "name")
        artist_id = _int(cols.get(rec, "artist", "id"))
        lang = cols.get(rec, "track", "language_code").lower()
        attrs = {
            "track_id": tid, "album_id": _int(cols.get(rec, "album", "id")), "album": cols.get(rec, "album", "title"),
            "artist_id": artist_id, "artist": artist, "title": title, "genre_top": top,
            "genres": ids["genres"], "genres_all": all_ids, "license": licence,
            "subset": cols.get(rec, "set", "subset"), "split": cols.get(rec, "set", "split"),
        }
        if str(tid) in tempos:
            attrs["tempo"] = tempos[str(tid)]
        return clip_row(
            id=cid, corpus=self.corpus, kind="music", path=str(path.resolve()), duration_s=info.duration_s,
            sample_rate=info.sample_rate, language=lang if _LANG.match(lang) else "", labels=labels,
            caption=f"{title or 'Untitled'} by {artist or 'an unknown artist'}", license=licence,
            split_group=f"fma:artist:{artist_id}" if artist_id != "" else f"fma:track:{tid}",
            attrs=json.dumps(attrs, ensure_ascii=False, sort_keys=True),
        )

    @staticmethod
    def _with_parents(ids: list[int], genres: dict) -> list[int]:
        """A track's genres and all their ancestors (what track.genres_all holds), when only genres is given."""
        out: list[int] = []
        for g in ids:
            seen = set()
            while g and g in genres and g not in seen:
                seen.add(g)
                if g not in out:
                    out.append(g)
                g = genres[g][1]
        return out
