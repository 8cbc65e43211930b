"""`streamaudio validate OUT`: re-check a built dataset against format v2.

Checks the layout, the dataset card's configs, every shard's schema, every
row against schemas/episode.schema.json and the chunk rules, and that the
audio decodes to exactly duration_s * 16000 samples.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import pyarrow.parquet as pq
import soundfile as sf
import yaml

from ..format import CHUNK_S, EPISODE_SCHEMA, SAMPLE_RATE, SCHEMAS_DIR
from ..render.label import episode_violations

SHARD_NAME = re.compile(r"^(train|validation|test)-(\d{5})-of-(\d{5})\.parquet$")


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    episodes: int = 0
    shards: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, where: str, msg: str) -> None:
        self.problems.append(f"{where}: {msg}")


def _front_matter(card: Path) -> dict:
    text = card.read_text()
    m = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    if not m:
        raise ValueError("README.md has no YAML front matter")
    return yaml.safe_load(m.group(1))


def validate(out: str | Path, decode_audio: bool = True, progress=None) -> Report:
    out = Path(out)
    rep = Report()
    for name in ("README.md", "build.json", "rejects.parquet", "data"):
        if not (out / name).exists():
            rep.add(str(out), f"missing {name}")
    if not rep.ok:
        return rep
    try:
        card = _front_matter(out / "README.md")
        configs = {c["config_name"]: c for c in card.get("configs", [])}
    except Exception as exc:
        rep.add("README.md", str(exc))
        configs = {}
    try:
        build = json.loads((out / "build.json").read_text())
    except (ValueError, OSError) as exc:
        rep.add("build.json", f"unreadable ({exc})")
        build = {}
    schema = json.loads((SCHEMAS_DIR / "episode.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    seen_ids: set[str] = set()
    hashes = build.get("shards") or {}
    per_split: dict[tuple[str, str], int] = {}
    for st_dir in sorted(p for p in (out / "data").iterdir() if p.is_dir()):
        st = st_dir.name
        if st not in configs:
            rep.add(f"data/{st}", "sub-task has shards but no config in README.md")
        else:
            splits = {d["split"] for d in configs[st]["data_files"]}
            present = {f.name.split("-")[0] for f in st_dir.glob("*.parquet")}
            if splits != present:
                rep.add(f"README.md config {st}", f"splits {sorted(splits)} but shards for {sorted(present)}")
        for shard in sorted(st_dir.glob("*.parquet")):
            where = f"data/{st}/{shard.name}"
            m = SHARD_NAME.match(shard.name)
            if not m:
                rep.add(where, "shard name is not <split>-NNNNN-of-MMMMM.parquet")
                continue
            total = int(m.group(3))
            if len(list(st_dir.glob(f"{m.group(1)}-*-of-{m.group(3)}.parquet"))) != total:
                rep.add(where, f"split {m.group(1)} should have {total} shards")
            rel = f"data/{st}/{shard.name}"
            if rel not in hashes:
                rep.add(where, "shard not listed in build.json")
            elif hashlib.sha256(shard.read_bytes()).hexdigest() != hashes[rel]:
                rep.add(where, "sha256 differs from build.json: the file changed after the build wrote it")
            before = rep.episodes
            _check_shard(shard, st, m.group(1), where, validator, seen_ids, rep, decode_audio, progress)
            per_split[(st, m.group(1))] = per_split.get((st, m.group(1)), 0) + rep.episodes - before
    for st, cfg in configs.items():
        for d in cfg.get("data_files", []):
            # a configured split without an episode: the card promises what the data lacks
            if not any((out / "data" / st).glob(f"{d['split']}-*.parquet")):
                rep.add(f"README.md config {st}", f"split {d['split']} has no shard")
            elif not per_split.get((st, d["split"])):
                rep.add(f"README.md config {st}", f"split {d['split']} has no episode (its shards are empty)")
    for rel in sorted(set(hashes) - {str(p.relative_to(out)) for p in (out / "data").rglob("*.parquet")}):
        rep.add(rel, "listed in build.json but missing")
    expected = build.get("episodes", {}).get("written")
    if expected is not None and expected != rep.episodes:
        rep.add("build.json", f"says {expected} episodes written, shards hold {rep.episodes}")
    for name, src in build.get("inputs", {}).items():
        if src["seen"] != src["used"] + src["rejected"]:
            rep.add("build.json", f"input {name}: seen {src['seen']} != used {src['used']} + rejected {src['rejected']}")
    try:
        n_rej = pq.read_metadata(out / "rejects.parquet").num_rows
        if n_rej != build.get("rejects", {}).get("total", n_rej):
            rep.add("rejects.parquet", f"{n_rej} rows but build.json says {build['rejects']['total']}")
    except Exception as exc:
        rep.add("rejects.parquet", f"unreadable ({exc})")
    return rep


def _check_shard(shard: Path, st: str, split: str, where: str, validator, seen_ids, rep: Report,
                 decode_audio: bool, progress=None) -> None:
    rep.shards += 1
    try:
        pf = pq.ParquetFile(shard)
    except Exception as exc:
        rep.add(where, f"not a readable Parquet file ({' '.join(str(exc).split())[:200]})")
        return
    if not pf.schema_arrow.remove_metadata().equals(EPISODE_SCHEMA):
        rep.add(where, "schema differs from format v2")
        return
    try:
        for batch in pf.iter_batches(batch_size=16):
            for row in batch.to_pylist():
                _check_row(row, st, split, where, validator, seen_ids, rep, decode_audio)
                if progress:
                    progress()
    except Exception as exc:  # a damaged page: one line in the report, and on to the next shard
        rep.add(where, f"unreadable after {rep.episodes} episode(s): {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")


def validate_shard(path: str | Path, subtask: str, split: str, decode_audio: bool = True) -> list[str]:
    """Every problem of one shard file (schema, rows, rules, audio); [] when it keeps the contract."""
    rep = Report()
    validator = jsonschema.Draft202012Validator(json.loads((SCHEMAS_DIR / "episode.schema.json").read_text()))
    _check_shard(Path(path), subtask, split, Path(path).name, validator, set(), rep, decode_audio)
    return rep.problems


def _check_row(row, subtask, split, where, validator, seen_ids, rep: Report, decode_audio: bool) -> None:
    rep.episodes += 1
    eid = row.get("id") or "?"
    here = f"{where} [{eid}]"
    if eid in seen_ids:
        rep.add(here, "duplicate id")
    seen_ids.add(eid)
    if row.get("subtask") != subtask:
        rep.add(here, f"subtask {row.get('subtask')!r} in the folder of {subtask!r}")
    if row.get("split") != split:
        rep.add(here, f"split {row.get('split')!r} in a {split} shard")
    audio = row.get("audio") or {}
    data = audio.get("bytes")
    json_row = {**row, "audio": {**audio, "bytes": None}}
    for err in validator.iter_errors(json_row):
        rep.add(here, f"schema: {'/'.join(map(str, err.path))}: {err.message}")
    for v in episode_violations(row, CHUNK_S):
        rep.add(here, v)
    rep.seconds += row.get("duration_s") or 0
    if not decode_audio:
        return
    if not data:
        rep.add(here, "no audio bytes")
        return
    try:
        x, sr = sf.read(io.BytesIO(data), dtype="int16")
        info = sf.info(io.BytesIO(data))
    except Exception as exc:
        rep.add(here, f"audio does not decode ({exc})")
        return
    if info.format != "FLAC" or info.subtype != "PCM_16" or info.channels != 1:
        rep.add(here, f"audio is {info.format}/{info.subtype}/{info.channels}ch, not 16-bit mono FLAC")
    if sr != SAMPLE_RATE:
        rep.add(here, f"audio is {sr} Hz")
    want = int(round((row.get("duration_s") or 0) * SAMPLE_RATE))
    if len(x) != want:
        rep.add(here, f"audio has {len(x)} samples, duration_s says {want}")
