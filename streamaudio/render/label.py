"""Labelling: turns to chunks, and the rules every episode must keep.

``episode_violations`` is the one statement of the chunk page's rules; the
build runs it on every episode before writing (a violating episode becomes
a reject) and ``streamaudio validate`` runs it again on what was written.
"""
from __future__ import annotations

import math

from ..format import CHUNK_S, MAX_EVIDENCE_DELAY_S, SAMPLE_RATE, SPLITS, chunk_of, n_chunks, taxonomy

TOL = 1e-4  # seconds; timings are stored rounded to 0.1 ms
# a turn's evidence_s and the word it names are placed separately (the segment on a sample,
# the plan on the clip's timings, both rounded): they agree to well under a millisecond
WORD_TOL = 1e-3


def label_turns(turns: list[dict], duration_s: float, chunk_s: float = CHUNK_S) -> tuple[list[dict], list[int]]:
    """Stored-plan turns (streamaudio.plan.store: evidence already resolved to segment
    indices and a time) -> format v2 turn structs in time order, and the chunk labels."""
    out = []
    for t in sorted(turns, key=lambda t: (t["trigger_s"], t["kind"])):
        trig = round(float(t["trigger_s"]), 4)
        out.append({
            "trigger_s": trig, "chunk": chunk_of(trig, chunk_s),
            "kind": t["kind"], "text": t["text"] if t["kind"] == "respond" else "", "emotion": t["emotion"],
            "tool_call": t["tool_call"], "evidence_s": round(float(t["evidence_s"]), 4),
            "evidence": [int(i) for i in t["evidence"]],
        })
    labels = [0] * n_chunks(duration_s, chunk_s)
    for t in out:
        if t["kind"] == "respond" and t["chunk"] < len(labels):
            labels[t["chunk"]] = 1
    return out, labels


def episode_violations(row: dict, chunk_s: float = CHUNK_S) -> list[str]:
    """Every way ``row`` (a format v2 episode, audio aside) breaks the contract."""
    v: list[str] = []
    tax = taxonomy()
    if row.get("subtask") not in tax.subtasks:
        v.append(f"unknown subtask {row.get('subtask')!r}")
    elif tax.subtasks[row["subtask"]] != row.get("ability"):
        v.append(f"ability {row.get('ability')!r} does not own subtask {row['subtask']!r}")
    if row.get("split") not in SPLITS:
        v.append(f"split {row.get('split')!r} is not one of {SPLITS}")
    if row.get("sample_rate") != SAMPLE_RATE:
        v.append(f"sample_rate {row.get('sample_rate')} != {SAMPLE_RATE}")
    if not math.isclose(row.get("chunk_s", 0), chunk_s):
        v.append(f"chunk_s {row.get('chunk_s')} != {chunk_s}")
    dur = row.get("duration_s", 0.0)
    k = dur / chunk_s
    if dur <= 0 or abs(k - round(k)) > 1e-6:
        v.append(f"duration_s {dur} is not a whole number of chunks")
    n = n_chunks(dur, chunk_s)
    labels = row.get("chunk_labels") or []
    if len(labels) != n:
        v.append(f"{len(labels)} chunk_labels for {n} chunks")
    for i, seg in enumerate(row.get("segments") or []):
        if seg["kind"] not in tax.segment_kinds:
            v.append(f"segment {i}: kind {seg['kind']!r}")
        if seg["role"] not in tax.segment_roles:
            v.append(f"segment {i}: role {seg['role']!r}")
        if not (-TOL <= seg["start_s"] <= seg["end_s"] <= dur + TOL):
            v.append(f"segment {i}: [{seg['start_s']}, {seg['end_s']}] not inside [0, {dur}]")
        prev = -math.inf
        for w in seg.get("words") or []:
            if not (seg["start_s"] - TOL <= w["start_s"] <= w["end_s"] <= seg["end_s"] + TOL):
                v.append(f"segment {i}: word {w['text']!r} [{w['start_s']}, {w['end_s']}] outside its segment")
            if w["start_s"] < prev - TOL:
                v.append(f"segment {i}: word {w['text']!r} out of order")
            prev = w["start_s"]
    want = [0] * n
    respond_chunks: dict[int, int] = {}
    segments = row.get("segments") or []
    for j, t in enumerate(row.get("turns") or []):
        v += _evidence_violations(j, t, segments, bool((row.get("system_prompt") or "").strip()))
        if t["kind"] not in tax.turn_kinds:
            v.append(f"turn {j}: kind {t['kind']!r}")
            continue
        if t["emotion"] not in tax.emotions:
            v.append(f"turn {j}: emotion {t['emotion']!r}")
        if t["trigger_s"] < 0 or t["trigger_s"] > dur + TOL:
            v.append(f"turn {j}: trigger_s {t['trigger_s']} outside [0, {dur}]")
        if t["chunk"] != chunk_of(t["trigger_s"], chunk_s):
            v.append(f"turn {j}: chunk {t['chunk']} but the chunk rule gives {chunk_of(t['trigger_s'], chunk_s)}")
        if t["kind"] == "respond":
            if not (t["text"] or "").strip():
                v.append(f"turn {j}: respond turn with empty text")
            if t["chunk"] in respond_chunks:
                v.append(f"turns {respond_chunks[t['chunk']]} and {j}: two respond turns share chunk {t['chunk']}")
            respond_chunks[t["chunk"]] = j
            if 0 <= t["chunk"] < n:
                want[t["chunk"]] = 1
        elif t["text"]:
            v.append(f"turn {j}: stay_silent turn carries text")
    if len(labels) == n and list(labels) != want:
        bad = [i for i in range(n) if labels[i] != want[i]]
        v.append(f"chunk_labels disagree with respond turns at chunks {bad[:10]}")
    return v


def _evidence_violations(j: int, t: dict, segments: list[dict], has_prompt: bool) -> list[str]:
    """The evidence rule: no reply before what it answers has been heard, none long after;
    evidence names segments that have started by then; a turn that names a speech segment
    is due at the end of one of its words (a partial turn) or after its last word."""
    v = []
    if "evidence_s" not in t:
        return [f"turn {j}: no evidence_s"]
    ev, trig = t["evidence_s"], t["trigger_s"]
    if not (ev - TOL <= trig <= ev + MAX_EVIDENCE_DELAY_S + TOL):
        v.append(f"turn {j}: trigger_s {trig} not within [evidence_s {ev}, evidence_s + {MAX_EVIDENCE_DELAY_S}]")
    idx = list(t.get("evidence") or [])
    if not idx:
        if t["kind"] == "stay_silent":
            v.append(f"turn {j}: stay_silent turn names no evidence (what would a naive model answer?)")
        elif not has_prompt:
            v.append(f"turn {j}: respond turn names no evidence and there is no system prompt it could answer")
    for i in idx:
        if not 0 <= i < len(segments):
            v.append(f"turn {j}: evidence index {i} is not a segment")
            continue
        seg = segments[i]
        if seg["start_s"] > ev + TOL:
            v.append(f"turn {j}: evidence segment {i} starts at {seg['start_s']}, after evidence_s {ev}")
        words = seg.get("words") or []
        if words and ev < words[-1]["end_s"] - WORD_TOL and not any(abs(ev - w["end_s"]) <= WORD_TOL for w in words):
            v.append(f"turn {j}: evidence_s {ev} is neither a word end of segment {i} nor after its last word")
    return v
