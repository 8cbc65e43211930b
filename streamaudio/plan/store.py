"""Episode plans as data: canonical JSON (stored per shard in OUT.work/plans) and its
sha256 (file locations aside), which every episode carries as ``provenance.plan_sha``. The build renders
from the stored form itself, so re-rendering a stored plan gives the same bytes."""
from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from .types import EpisodePlan, SegmentPlan, TurnPlan

PLAN_FORMAT = 1


def _plain(x: Any):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON-able in a plan: {type(x).__name__}")


def plan_to_dict(plan: EpisodePlan) -> dict:
    turns = []
    for t in plan.turns:
        idx, ev = plan.evidence_of(t)
        turns.append({"trigger_s": float(t.trigger_s), "kind": t.kind, "text": t.text, "emotion": t.emotion,
                      "tool_call": t.tool_call, "evidence": idx, "evidence_s": float(ev)})
    return {
        "plan_format": PLAN_FORMAT,
        "segments": [{"clip": s.clip, "start_s": float(s.start_s), "kind": s.kind, "role": s.role,
                      "gain_db": float(s.gain_db), "clip_start_s": float(s.clip_start_s),
                      "clip_dur_s": None if s.clip_dur_s is None else float(s.clip_dur_s),
                      "loop_to_end": bool(s.loop_to_end), "text": s.text,
                      "labels": None if s.labels is None else list(s.labels), "attrs": dict(s.attrs),
                      "snr_db": None if s.snr_db is None else float(s.snr_db), "rir": s.rir,
                      **({"fade_s": float(s.fade_s)} if s.fade_s is not None else {})}
                     for s in plan.segments],
        "turns": turns,
        "language": plan.language, "system_prompt": plan.system_prompt,
        "min_duration_s": float(plan.min_duration_s), "text_writer": plan.text_writer, "tts": plan.tts,
        "aligner": plan.aligner, **({"render": plan.render} if plan.render else {}),
    }


def plan_from_dict(d: dict) -> EpisodePlan:
    segs = [SegmentPlan(**s) for s in d["segments"]]
    turns = [TurnPlan(**t) for t in d["turns"]]
    return EpisodePlan(segments=segs, turns=turns, render=d.get("render") or {}, **{k: d[k] for k in (
        "language", "system_prompt", "min_duration_s", "text_writer", "tts", "aligner")})


def plan_json(plan: EpisodePlan) -> str:
    """Canonical JSON: sorted keys, no spaces; floats as Python writes them (exact round trip)."""
    return json.dumps(plan_to_dict(plan), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain)


def plan_sha(stored: dict) -> str:
    """sha256 of a stored plan, where its clips are named by what they are (id, span, text,
    ...) but not by where their files lie: the same plan from a corpus mounted elsewhere
    (another node, another cache folder) has the same sha, so shards stay byte-identical."""
    def nopath(clip):
        return None if clip is None else {k: v for k, v in clip.items() if k != "path"}

    canon = {**stored, "segments": [{**s, "clip": nopath(s["clip"]), "rir": nopath(s.get("rir"))}
                                     for s in stored["segments"]]}
    text = json.dumps(canon, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()
