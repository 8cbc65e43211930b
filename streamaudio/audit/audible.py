"""Is an utterance still heard when the reply to it is due?

For every turn that waits for the whole of a speech segment, the level of the stream in the
100 ms after its evidence_s (and after its trigger) compared with the stream without that
segment, from the stored plan's stems. A reply labelled due while the speaker is audibly
finishing teaches a model to answer on a residue; the renderer settles turns so this stays
under 1 dB (streamaudio.render.mix.settle_turns), and this audit checks what was shipped.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from ..format import SAMPLE_RATE
from ..plan.store import plan_from_dict
from ..render.mix import AUDIBLE_WINDOW_S, WORD_END_TOL_S, mix_plan, residue_db

# the published rule: the 100 ms after a reply's evidence is within this of the stream without it
AUDIBLE_LIMIT_DB = 1.0


@dataclass
class Residue:
    episode: str
    turn: int
    segment: int
    kind: str  # the turn's kind
    evidence_s: float
    at_evidence_db: float  # the stream with the segment over without it, in the window after evidence_s
    at_trigger_db: float  # the same after trigger_s


def episode_residues(row: dict, stored_plan: dict) -> list[Residue]:
    """Residues of one shipped episode (a format v2 row) against its stored plan."""
    plan = plan_from_dict(stored_plan)
    mixed = mix_plan(plan, row["chunk_s"], min_duration_s=row["duration_s"])
    if len(mixed.mix) != int(round(row["duration_s"] * SAMPLE_RATE)):
        raise ValueError(f"{row['id']}: the stored plan renders {mixed.duration_s} s, the episode is {row['duration_s']} s")
    w = int(AUDIBLE_WINDOW_S * SAMPLE_RATE)
    out = []
    for j, t in enumerate(row["turns"]):
        for i in t["evidence"]:
            seg = row["segments"][i]
            words = seg["words"]
            if seg["kind"] != "speech" or not words or t["evidence_s"] < words[-1]["end_s"] - WORD_END_TOL_S:
                continue  # not waiting for the whole utterance (a partial transcript is due at a word end)
            a = int(round(t["evidence_s"] * SAMPLE_RATE))
            b = int(round(t["trigger_s"] * SAMPLE_RATE))
            out.append(Residue(row["id"], j, i, t["kind"], t["evidence_s"],
                               residue_db(mixed.mix, mixed.stems[i], a, a + w),
                               residue_db(mixed.mix, mixed.stems[i], b, b + w)))
    return out


def build_residues(out: str | Path, subtasks: list[str] | None = None) -> list[Residue]:
    """Residues of every episode in a built dataset (OUT/data and the plans in OUT.work/plans)."""
    from ..build.builder import work_dir

    out = Path(out)
    plans_root = work_dir(out.resolve()) / "plans"
    res = []
    for shard in sorted((out / "data").glob("*/*.parquet")):
        if subtasks is not None and shard.parent.name not in subtasks:
            continue
        plans = {p["id"]: json.loads(p["plan"]) for p in pq.read_table(plans_root / shard.parent.name / shard.name).to_pylist()}
        for row in pq.read_table(shard, columns=["id", "chunk_s", "duration_s", "turns", "segments"]).to_pylist():
            res += episode_residues(row, plans[row["id"]])
    return res
