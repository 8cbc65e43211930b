"""Helpers shared by the speech recipes of this folder (a recipe folder is a package:
``from ._speech import ...``). Modules starting with ``_`` are not recipes."""
from __future__ import annotations

from streamaudio.plan import PlanContext, SegmentPlan, TurnPlan, speech_end


def utterance_train(ctx: PlanContext, utterances: list[dict], t0: float,
                    gap_s: tuple[float, float] = (0.8, 2.4)) -> tuple[list[SegmentPlan], list[TurnPlan], float]:
    """Utterances one after another from ``t0``, with gaps drawn from ``gap_s``; after each,
    a reply with its transcript, due when its speech ends (the aligned end of its last word,
    the end of the file for clips without timings). Returns (segments, turns, end time).

    The released script pads turns with 0.8-2.4 s of noise; >= 2 chunks keeps replies apart."""
    segments, turns = [], []
    t = t0
    for u in utterances:
        seg = SegmentPlan(clip=u, start_s=t, kind="speech", role="user")
        segments.append(seg)
        turns.append(TurnPlan(trigger_s=t + speech_end(u), kind="respond", text=u["text"], evidence=[seg]))
        t += u["duration_s"] + float(ctx.rng.uniform(*gap_s))
    return segments, turns, t


def main_language(clips: list[dict]) -> str:
    """The episode's main spoken language: the most common among its clips (the first on a tie)."""
    langs = [c.get("language") or "" for c in clips]
    counts = {lang: langs.count(lang) for lang in langs if lang}
    return max(counts, key=lambda lang: (counts[lang], -langs.index(lang))) if counts else ""


def aligners(clips: list[dict]) -> str:
    """What timed the words of these clips, for provenance."""
    return ",".join(sorted({c.get("words_by", "") for c in clips if c.get("words")}))
