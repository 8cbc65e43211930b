"""DNS Challenge room impulse responses: ``impulse_responses/`` of a DNS release
(``datasets/impulse_responses`` wideband, ``datasets_fullband/impulse_responses`` fullband)
holding OpenSLR 26 and 28 as the DNS download lays them out:

* ``SLR26/simulated_rirs_{16k,48k}/{smallroom,mediumroom,largeroom}/Room<NNN>/Room<NNN>-<NNNNN>.wav``
  (simulated; 48k in the fullband releases);
* ``SLR28/RIRS_NOISES/real_rirs_isotropic_noises/*.wav`` (real RIRs from RWCP, the REVERB
  2014 challenge and AIR, 16 kHz, many multi-channel; the same folder also holds the
  isotropic noises recorded with them, which are not RIRs);
* ``RIR_table_simple.csv``: one row per (RIR file, channel): ``wavfile, channel`` (1-based),
  ``T60_WB`` (s), ``C50_WB`` (dB), ``isRealRIR`` (1 real, 0 simulated).

Checked against the DNS-Challenge repo (file listing of ``datasets/impulse_responses/SLR26``
and ``SLR28``, the SLR26/SLR28 READMEs, README "Dataset licenses"), its
``noisyspeech_synthesizer_singleprocess.py`` (reads the table with those five columns, turns
``\\`` into ``/``, joins ``wavfile`` to ``datasets/impulse_responses``, picks ``channel - 1``
of a multi-channel file, ``isRealRIR == "1"`` for real RIRs) and the DNS5 download script
(speechbrain recipe), which fetches the table from the repo's
``datasets/acoustic_params/RIR_table_simple.csv`` into ``impulse_responses/`` and rewrites its
``datasets/impulse_responses/SLR26/simulated_rirs_16k`` prefixes.

The table is looked for at ``impulse_responses/RIR_table_simple.csv``, then
``../acoustic_params/RIR_table_simple.csv`` (the repo layout), or where the ``rir_table``
option says. Paths in it are resolved after ``impulse_responses/`` if they contain it, else
relative to the impulse_responses folder (absolute paths as they are); a table written for
``simulated_rirs_16k`` finds the ``simulated_rirs_48k`` files of a fullband release (and the
other way round): rows keep the sample rate of the file found. Without a table, every
``SLR26/simulated_rirs*/*room/Room*/*.wav`` (channel 1) and every SLR28 real-RIR file
(``*_rir_*`` or ``air_*`` names; the isotropic noises are left out) is a row, with no T60.

Rows: kind "rir", one per table row: id ``dns_rir:slr26-<size>-Room<NNN>-<NNNNN>-ch<c>`` or
``dns_rir:slr28-<file stem>-ch<c>``; attrs: source (SLR26 or SLR28), room, channel (1-based,
the channel this row is; the row's ``channel`` column is the same, 0-based, and rendering reads
only that channel), t60_s, c50_db,
real. split_group is the room (``dns_rir:slr26:<size>/Room<NNN>``; for SLR28 the room parsed
from the name: REVERB ``<size>room<N>``, RWCP ``<array>_<room code>``, AIR ``<room>``; else the
file): responses of one room never straddle a split. Licence: Apache 2.0 (OpenSLR 26, 28).

Level: probe_audio's level probes are made for long clips; an RIR is short and decays to
nothing, so the adapter reads the whole (short) file and rejects the row as silent when the
peak of its channel is below -65 dBFS. Faults: a table row whose file is missing, a row
that is malformed (rejected as a corrupt row), a channel the file does not have, and corrupt,
truncated or silent files.
"""
from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from .base import SILENCE_DBFS, Adapter, LayoutError, ProbeError, Reject, clip_row, probe_audio, register_adapter

LAYOUTS = (("datasets", "impulse_responses"), ("datasets_fullband", "impulse_responses"))
TABLE = "RIR_table_simple.csv"
TABLE_COLUMNS = ("wavfile", "channel", "T60_WB", "C50_WB", "isRealRIR")
ROWS_PER_UNIT = 64
MAX_RIR_S = 30.0  # longer than any RIR: read in full only up to this
SLR28_DIR = ("SLR28", "RIRS_NOISES", "real_rirs_isotropic_noises")
REVERB = re.compile(r"^RVB2014_type\d+_rir_(?P<room>[a-z]+room\d+)_")
RWCP = re.compile(r"^RWCP_type\d+_rir_(?P<room>(?:circle|cirline)_[a-z0-9]+)_imp")
AIR = re.compile(r"^air_type\d+_air_(?:binaural|phone)_(?P<room>[a-z]+(?:_[a-z]+)*)_\d")


def slr28_room(stem: str) -> str:
    for db, rx in (("RVB2014", REVERB), ("RWCP", RWCP), ("air", AIR)):
        m = rx.match(stem)
        if m:
            return f"{db}:{m['room']}"
    return stem


@register_adapter
class DnsRir(Adapter):
    corpus = "dns_rir"
    kind = "rir"
    license = "Apache-2.0 (OpenSLR 26 and 28)"
    version = "1"
    provides = frozenset()
    expected_layout = ("impulse_responses/SLR26/simulated_rirs_{16k,48k}/<size>room/Room<NNN>/*.wav and/or "
                       "impulse_responses/SLR28/RIRS_NOISES/real_rirs_isotropic_noises/*.wav, with "
                       "impulse_responses/RIR_table_simple.csv (wavfile,channel,T60_WB,C50_WB,isRealRIR); "
                       "impulse_responses under datasets/ or datasets_fullband/")

    def _base(self, root: Path) -> Path:
        cands = [root / a / b for a, b in LAYOUTS] + [root / "impulse_responses", root]
        for cand in cands:
            if (cand / "SLR26").is_dir() or (cand / "SLR28").is_dir():
                return cand
        raise LayoutError(f"dns_rir: no impulse_responses folder with SLR26/ or SLR28/ under {root}. "
                          f"Expected layout: {self.expected_layout}")

    def _table(self, base: Path, options: dict) -> Path | None:
        if options.get("rir_table"):
            p = Path(options["rir_table"])
            if not p.is_file():
                raise LayoutError(f"dns_rir: rir_table {p} does not exist. Expected layout: {self.expected_layout}")
            return p
        for cand in (base / TABLE, base.parent / "acoustic_params" / TABLE):
            if cand.is_file():
                return cand
        return None

    def check_layout(self, root: Path, options: dict) -> None:
        table = self._table(self._base(root), options)
        if table is not None:
            with open(table, newline="", encoding="utf-8", errors="replace") as f:
                self._columns(table, next(csv.reader(f), []))

    def _columns(self, table: Path, header: list[str]) -> dict[str, int]:
        cols = {h.strip(): i for i, h in enumerate(header)}
        if any(c not in cols for c in TABLE_COLUMNS):
            raise LayoutError(f"dns_rir: {table} has columns {header}, not {list(TABLE_COLUMNS)}. "
                              f"Expected layout: {self.expected_layout}")
        return cols

    def listing_roots(self, root: Path, options: dict) -> list[Path]:
        base = self._base(root)
        table = self._table(base, options)
        return [base] + ([table] if table is not None and base not in table.parents else [])

    def units(self, root: Path, options: dict) -> list[list[dict]]:
        base = self._base(root)
        table = self._table(base, options)
        recs = self._from_table(base, table) if table is not None else self._from_folders(base)
        return [recs[i:i + ROWS_PER_UNIT] for i in range(0, len(recs), ROWS_PER_UNIT)]

    # ------------------------------------------------------------------ listing
    def _resolve(self, base: Path, wavfile: str) -> tuple[Path, bool]:
        """The file a table path names (and whether it exists): after ``impulse_responses/``
        if the path holds it, else relative to ``base``; 16k and 48k SLR26 folders stand in
        for each other."""
        w = wavfile.strip().replace("\\", "/")
        if Path(w).is_absolute() and Path(w).is_file():
            return Path(w), True
        if "impulse_responses/" in w:
            w = w.rsplit("impulse_responses/", 1)[1]
        while w.startswith("./"):
            w = w[2:]
        tries = [w]
        for a, b in (("simulated_rirs_16k", "simulated_rirs_48k"), ("simulated_rirs_48k", "simulated_rirs_16k")):
            if a in w:
                tries.append(w.replace(a, b))
        for t in tries:
            if (base / t).is_file():
                return base / t, True
        return base / w, False

    def _key(self, base: Path, path: Path) -> tuple[str, str, str]:
        """(id key, source, room) of an RIR file."""
        try:
            parts = path.relative_to(base).parts
        except ValueError:
            parts = path.parts
        if "SLR26" in parts and len(parts) >= 4:
            size, room = parts[-3], parts[-2]
            return f"slr26-{size}-{path.stem}", "SLR26", f"{size}/{room}"
        if "SLR28" in parts:
            return f"slr28-{path.stem}", "SLR28", slr28_room(path.stem)
        return "-".join(Path(*parts).with_suffix("").parts), "", path.stem

    def _rec(self, base: Path, path: Path, channel: int, extra: dict) -> dict:
        key, source, room = self._key(base, path)
        return {"id": f"{self.corpus}:{key}-ch{channel}", "path": str(path), "channel": channel,
                "source": source, "room": room, **extra}

    def _from_table(self, base: Path, table: Path) -> list[dict]:
        recs = []
        with open(table, newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.reader(f)
            cols = self._columns(table, next(reader, []))
            for lineno, row in enumerate(reader, 2):
                if not any(x.strip() for x in row):
                    continue
                where = f"{self.corpus}:{table.name}:{lineno}"
                fields, problem = self._fields(row, cols)
                if problem:
                    recs.append({"id": where, "error": f"corrupt row: {table.name} line {lineno} is malformed "
                                                       f"({problem})"})
                    continue
                wavfile, channel, t60, c50, real = fields
                path, found = self._resolve(base, wavfile)
                if not found:
                    key = self._key(base, path)[0]
                    recs.append({"id": f"{self.corpus}:{key}-ch{channel}",
                                 "error": f"audio file missing: {wavfile} ({table.name} line {lineno})"})
                    continue
                recs.append(self._rec(base, path, channel, {"t60_s": t60, "c50_db": c50, "real": real}))
        return recs

    @staticmethod
    def _fields(row: list[str], cols: dict[str, int]) -> tuple[tuple, str]:
        """(wavfile, channel, T60, C50, real) of a table row, or the reason it cannot be read."""
        if len(row) <= max(cols[c] for c in TABLE_COLUMNS):
            return (), f"{len(row)} fields, expected {len(TABLE_COLUMNS)}"
        wavfile = row[cols["wavfile"]].strip()
        if not wavfile.lower().endswith(".wav"):
            return (), f"wavfile {wavfile[:60]!r} is not a .wav path"
        try:
            channel = int(row[cols["channel"]])
            if channel < 1:
                raise ValueError
        except ValueError:
            return (), f"channel {row[cols['channel']]!r} is not a channel number from 1"
        values = []
        for c in ("T60_WB", "C50_WB"):
            try:
                v = float(row[cols[c]])
                if not math.isfinite(v):
                    raise ValueError
            except ValueError:
                return (), f"{c} {row[cols[c]]!r} is not a number"
            values.append(v)
        real = row[cols["isRealRIR"]].strip()
        if real not in ("0", "1"):
            return (), f"isRealRIR {real!r} is not 0 or 1"
        return (wavfile, channel, values[0], values[1], real == "1"), ""

    def _from_folders(self, base: Path) -> list[dict]:
        files = sorted(base.glob("SLR26/simulated_rirs*/*room/Room*/*.wav"))
        slr28 = base.joinpath(*SLR28_DIR)
        files += sorted(p for p in slr28.glob("*.wav") if "_rir_" in p.name or p.name.startswith("air_"))
        return [self._rec(base, p, 1, {"real": "SLR28" in p.relative_to(base).parts}) for p in files]

    # ------------------------------------------------------------------ scan
    def scan_unit(self, root: Path, options: dict, unit: list[dict]) -> Iterator[dict | Reject]:
        for rec in unit:
            if "error" in rec:
                yield Reject(rec["id"], rec["error"])
                continue
            path = Path(rec["path"])
            try:
                info = probe_audio(path, check_level=False)
                if rec["channel"] > info.channels:
                    raise ProbeError(f"channel {rec['channel']} missing: the file has {info.channels} channel(s)")
                peak = self._peak_db(path, info, rec["channel"])
                if peak < SILENCE_DBFS:
                    what = "digital silence" if peak <= -150 else f"peak {peak:.0f} dBFS"
                    raise ProbeError(f"silent audio ({what} in channel {rec['channel']}: the response is empty)")
            except ProbeError as exc:
                yield Reject(rec["id"], str(exc))
                continue
            attrs = {"source": rec["source"], "room": rec["room"], "channel": rec["channel"], "real": rec["real"]}
            for k in ("t60_s", "c50_db"):
                if k in rec:
                    attrs[k] = rec[k]
            yield clip_row(
                id=rec["id"], corpus=self.corpus, kind="rir", path=str(path.resolve()),
                duration_s=info.duration_s, sample_rate=info.sample_rate, license=self.license,
                split_group=f"{self.corpus}:{rec['source'].lower() or 'other'}:{rec['room']}",
                channel=int(rec["channel"]) - 1,  # the table's channels are 1-based
                attrs=json.dumps(attrs, sort_keys=True),
            )

    @staticmethod
    def _peak_db(path: Path, info, channel: int) -> float:
        frames = min(info.frames, int(MAX_RIR_S * info.sample_rate))
        x, _ = sf.read(str(path), frames=frames, dtype="float32", always_2d=True)
        peak = float(np.max(np.abs(x[:, channel - 1]))) if len(x) else 0.0
        return 20 * np.log10(peak + 1e-20)
