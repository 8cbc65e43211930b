"""Labelling: turns to chunks, and the rules every episode must keep.

``episode_violations`` is the one statement of the chunk page's rules; the
build runs it on every episode before writing (a violating episode becomes
a reject) and ``streamaudio validate`` runs it again on what was written.
"""
from __future__ import annotations

import math

from .format import CHUNK_S, SAMPLE_RATE, SPLITS, chunk_of, n_chunks, taxonomy
from .plan import TurnPlan

TOL = 1e-4  # seconds; timings are stored rounded to 0.1 ms


def label_turns(turns: list[TurnPlan], duration_s: float, chunk_s: float = CHUNK_S) -> tuple[list[dict], list[int]]:
    out = []
    for t in sorted(turns, key=lambda t: (t.trigger_s, t.kind)):
        out.append({
            "trigger_s": round(float(t.trigger_s), 4), "chunk": chunk_of(round(float(t.trigger_s), 4), chunk_s),
            "kind": t.kind, "text": t.text if t.kind == "respond" else "", "emotion": t.emotion,
            "tool_call": t.tool_call,
        })
    labels = [0] * n_chunks(duration_s, chunk_s)
    for t in out:
        if t["kind"] == "respond" and t["chunk"] < len(labels):
            labels[t["chunk"]] = 1
    return out, labels


def episode_violations(row: dict, chunk_s: float = CHUNK_S) -> list[str]:
    """Every way ``row`` (a format v1 episode, audio aside) breaks the contract."""
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
    for j, t in enumerate(row.get("turns") or []):
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
