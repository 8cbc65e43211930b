"""Episode format v2: the Arrow schema, the chunk rule and the taxonomy.

This module is the single code-side statement of the output contract
(docs: episode-format.md). `schemas/episode.schema.json` says the same thing
for non-Python readers; tests/test_format.py keeps the two in sync.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache

import pyarrow as pa
import yaml

from .resources import MANIFESTS_DIR, SCHEMAS_DIR  # noqa: F401  (re-exported)

FORMAT_VERSION = 2
SAMPLE_RATE = 16000
CHUNK_S = 0.4
SPLITS = ("train", "validation", "test")

# A float tolerance for "t is exactly on a chunk boundary"; part of the contract.
CHUNK_EPS = 1e-6

# A reply is due at most this long after the audio it depends on has been heard in full.
MAX_EVIDENCE_DELAY_S = 2.0


def chunk_of(t: float, chunk_s: float = CHUNK_S) -> int:
    """The chunk after which a turn due at time ``t`` is emitted.

    Chunk k covers [k*c, (k+1)*c); the model decides after hearing a chunk, so
    the turn belongs to the first chunk whose end is at or after t.
    """
    return max(0, math.ceil(t / chunk_s - CHUNK_EPS) - 1)


def n_chunks(duration_s: float, chunk_s: float = CHUNK_S) -> int:
    return int(round(duration_s / chunk_s))


def round_up_to_chunk(t: float, chunk_s: float = CHUNK_S) -> float:
    """Smallest whole number of chunks covering t (at least one chunk)."""
    k = max(1, math.ceil(t / chunk_s - CHUNK_EPS))
    return round(k * chunk_s, 6)


WORD_TYPE = pa.struct(
    [
        pa.field("text", pa.string()),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
    ]
)

SEGMENT_TYPE = pa.struct(
    [
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("kind", pa.string()),
        pa.field("role", pa.string()),
        pa.field("text", pa.string()),
        pa.field("language", pa.string()),
        pa.field("labels", pa.list_(pa.string())),
        pa.field("words", pa.list_(WORD_TYPE)),
        pa.field("gain_db", pa.float32()),
        pa.field("corpus", pa.string()),
        pa.field("clip_id", pa.string()),
        pa.field("license", pa.string()),
        # the segment's level over everything else audible under it, measured on the
        # rendered mix; null when nothing else is audible there
        pa.field("snr_db", pa.float32()),
        pa.field("attrs", pa.string()),  # JSON object of further facts ("{}" if none)
    ]
)

TURN_TYPE = pa.struct(
    [
        pa.field("trigger_s", pa.float64()),
        pa.field("chunk", pa.int32()),
        pa.field("kind", pa.string()),
        pa.field("text", pa.string()),
        pa.field("emotion", pa.string()),
        pa.field("tool_call", pa.string()),
        # when the audio this turn depends on has been heard in full, and which segments it is
        pa.field("evidence_s", pa.float64()),
        pa.field("evidence", pa.list_(pa.int32())),
    ]
)

AUDIO_TYPE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])

PROVENANCE_TYPE = pa.struct(
    [
        pa.field("toolkit_version", pa.string()),
        pa.field("recipe", pa.string()),
        pa.field("recipe_version", pa.string()),
        pa.field("seed", pa.int64()),
        pa.field("text_writer", pa.string()),
        pa.field("tts", pa.string()),
        pa.field("aligner", pa.string()),
        pa.field("plan_sha", pa.string()),  # sha256 of the stored episode plan (OUT.work/plans)
    ]
)

EPISODE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("ability", pa.string()),
        pa.field("subtask", pa.string()),
        pa.field("split", pa.string()),
        pa.field("language", pa.string()),
        pa.field("system_prompt", pa.string()),
        pa.field("audio", AUDIO_TYPE),
        pa.field("sample_rate", pa.int32()),
        pa.field("duration_s", pa.float64()),
        pa.field("chunk_s", pa.float64()),
        pa.field("segments", pa.list_(SEGMENT_TYPE)),
        pa.field("turns", pa.list_(TURN_TYPE)),
        pa.field("chunk_labels", pa.list_(pa.int8())),
        pa.field("provenance", PROVENANCE_TYPE),
    ]
)


@dataclass(frozen=True)
class Taxonomy:
    abilities: dict[str, tuple[str, ...]]
    segment_kinds: tuple[str, ...]
    segment_roles: tuple[str, ...]
    turn_kinds: tuple[str, ...]
    emotions: tuple[str, ...]

    @property
    def subtasks(self) -> dict[str, str]:
        """sub-task slug -> ability slug."""
        return {s: a for a, subs in self.abilities.items() for s in subs}


@lru_cache(maxsize=1)
def taxonomy() -> Taxonomy:
    raw = yaml.safe_load((MANIFESTS_DIR / "taxonomy.yaml").read_text())
    return Taxonomy(
        abilities={a: tuple(s) for a, s in raw["abilities"].items()},
        segment_kinds=tuple(raw["segment_kinds"]),
        segment_roles=tuple(raw["segment_roles"]),
        turn_kinds=tuple(raw["turn_kinds"]),
        emotions=tuple(raw["emotions"]),
    )


def hf_features():
    """The `datasets.Features` of an episode row: Arrow types plus a 16 kHz Audio column."""
    import datasets

    feats = datasets.Features.from_arrow_schema(EPISODE_SCHEMA)
    feats["audio"] = datasets.Audio(sampling_rate=SAMPLE_RATE)
    return feats


HF_FEATURES_FILE = "episode.hf-features.json"


def hf_features_data() -> dict:
    """What `datasets` says of ``hf_features()``: its dict (shard metadata) and its YAML list
    (the card). Written in schemas/ and read from there, so neither a build's driver nor its
    workers import `datasets` (a second of CPU per process); tests/test_format.py keeps the
    file equal to what the installed `datasets` computes."""
    return json.loads((SCHEMAS_DIR / HF_FEATURES_FILE).read_text())


def compute_hf_features_data() -> dict:
    feats = hf_features()
    return {"dict": feats.to_dict(), "yaml_list": feats._to_yaml_list()}
