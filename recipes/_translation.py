"""Helpers shared by the speech translation recipes (s2tt_*) and asr_multilingual.

Replies to translated speech are due at a clause's last word (simultaneous translation,
from the clause table of streamaudio.text.clauses) or, without a clause split, at the
sentence's end: its last word's end with word timings, the clip's end without (segment
attrs say which: ``reply_unit`` clause/sentence, ``reply_at`` word_end/clip_end)."""
from __future__ import annotations

import pyarrow.compute as pc

from streamaudio.plan import PlanContext, SegmentPlan, TurnPlan, speech_end
from streamaudio.text.clauses import join_clauses

MIN_REPLY_GAP_S = 0.8  # two chunks between consecutive replies
GAP_S = (0.8, 2.4)  # silence (the bed) between utterances, as the released script pads turns


def is_translated(r: dict) -> bool:
    return bool((r.get("translation") or "").strip()) and bool((r.get("text") or "").strip())


def pool_languages(pool, column: str = "language", where=None) -> list[str]:
    """The distinct values of a language column over a pool (vectorised: no row becomes a
    dict); ``where`` is an Arrow mask expression builder ``table -> mask`` to filter first."""
    table = pool.table
    if table.num_rows == 0 or column not in table.column_names:
        return []
    if where is not None:
        table = table.filter(where(table))
    values = pc.unique(pc.fill_null(table[column], "")).to_pylist()
    return sorted(v for v in values if v)


def primary_is(table, column: str, code: str):
    """Arrow mask: the column's primary language subtag is ``code``."""
    col = pc.utf8_lower(pc.replace_substring_regex(pc.fill_null(table[column], ""), r"[-_].*$", ""))
    return pc.equal(col, code)


def reply_units(clip: dict, clauses: list[dict] | None, target_language: str, marks: dict,
                min_gap_s: float = MIN_REPLY_GAP_S) -> tuple[list[tuple[str, float]], dict]:
    """(replies as (text, due time in clip time), attrs) for one translated utterance.

    With word timings and a clause split: one reply per clause at its last word's end; a
    clause that ends less than ``min_gap_s`` after the previous reply is said together with
    it, at the later end (two replies never share a chunk). Otherwise one reply, the whole
    translation, at the sentence's end."""
    words = clip.get("words") or []
    if words and clauses:
        units: list[tuple[list[str], float]] = []
        for c in clauses:
            end = words[c["last_word"]]["end_s"]
            if units and end - units[-1][1] < min_gap_s:
                units[-1] = (units[-1][0] + [c["target"]], end)
            else:
                units.append(([c["target"]], end))
        out = [(join_clauses(texts, target_language, marks), end) for texts, end in units]
        return out, {"reply_unit": "clause" if len(out) > 1 else "sentence", "reply_at": "word_end",
                     "clauses": len(clauses), "replies": len(out)}
    attrs = {"reply_unit": "sentence", "reply_at": "word_end" if words else "clip_end"}
    if not words:
        attrs["why"] = "no word timings: the reply is due at the clip's end"
    return [(clip["translation"].strip(), speech_end(clip))], attrs


def translation_train(ctx: PlanContext, utterances: list[dict], t0: float, clauses: dict, marks: dict,
                      role: str = "user") -> tuple[list[SegmentPlan], list[TurnPlan], float]:
    """Utterances one after another from ``t0`` with noise-filled gaps; each answered with its
    translation (clause by clause where ``clauses`` has the clip, else per sentence).
    Returns (segments, turns, end time)."""
    segments, turns = [], []
    t = t0
    for u in utterances:
        units, attrs = reply_units(u, clauses.get(u["id"]), u["translation_language"], marks)
        seg = SegmentPlan(clip=u, start_s=t, kind="speech", role=role,
                          attrs={"source_language": u.get("language", ""),
                                 "target_language": u["translation_language"],
                                 "translation": u["translation"].strip(), **attrs})
        segments.append(seg)
        for text, end in units:
            due = t + end
            turns.append(TurnPlan(trigger_s=due, kind="respond", text=text, evidence=[seg], evidence_s=due))
        t += u["duration_s"] + float(ctx.rng.uniform(*GAP_S))
    return segments, turns, t
