"""Helpers for the voice_chatting recipes of this folder (chat_multi_turn, chat_history_review,
chat_sound_aware): dialogues from a chat pool, a spoken conversation paced by its replies
(manifests/chat/pacing.yaml), spoken prompts in the user's voice, and phrases for sounds and
music (manifests/chat/sound_phrases.yaml)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import numpy as np

from streamaudio.plan import PlanContext, PlanError, SegmentPlan, TurnPlan, background_bed, pick
from streamaudio.text.curation import suitable

PAD_BEFORE_S, PAD_AFTER_S = 0.2, 0.3  # of a sound event's clip kept around its active span
CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


# ---------------------------------------------------------------- dialogues
def usable_turn(r: dict) -> bool:
    """A chat row that can be a spoken user turn with a reply."""
    return bool(r.get("words")) and bool((r.get("response") or "").strip()) and bool(r.get("dialogue")) \
        and (r.get("turn") if r.get("turn") is not None else -1) >= 0


def dialogue_turns(pool, dialogue: str, max_turns: int) -> list[dict]:
    """A dialogue's turns in order, from its first: the longest run 0, 1, 2, ... of usable turns
    (a turn the source stages rejected leaves a hole; what follows it may lean on it), at most
    ``max_turns``."""
    rows = sorted(pool.with_value("dialogue", dialogue), key=lambda r: r["turn"])
    out: list[dict] = []
    for r in rows:
        if r["turn"] != len(out) or not usable_turn(r) or len(out) == max_turns:
            break
        out.append(r)
    return out


def pick_dialogue(rng: np.random.Generator, pool, want: int, fewest: int, max_turns: int, where=None,
                  tries: int = 4) -> list[dict]:
    """The turns of one dialogue: uniform over the dialogues with at least ``want`` usable turns
    in order; only when the pool has none of those, over the ones with ``want - 1``, ... down to
    ``fewest``. A dialogue is drawn through the row of its turn number ``k - 1``, which each
    dialogue with k or more turns has exactly once, so long dialogues are not favoured."""
    for need in range(want, fewest - 1, -1):
        def anchor(r, need=need):
            return r.get("turn") == need - 1 and usable_turn(r) and (where is None or where(r))

        for _ in range(tries):
            try:
                row = pool.choice(rng, where=anchor)
            except PlanError:
                break  # no dialogue that long here: accept a shorter one
            turns = dialogue_turns(pool, row["dialogue"], max_turns)
            if len(turns) >= need:
                return turns
    raise PlanError(f"pool {pool.name!r} has no dialogue with {fewest} or more usable spoken turns")


# ---------------------------------------------------------------- pacing
def spoken_words(text: str) -> float:
    """How many words saying ``text`` takes: Chinese, Japanese and Korean characters (written
    without spaces) count as half a word each."""
    cjk = len(CJK.findall(text))
    return len(CJK.sub(" ", text).split()) + cjk / 2


def reply_gap_s(reply: str, pacing: dict) -> float:
    """How long the user waits after a reply becomes due: about as long as saying it takes."""
    lo, hi = pacing["reply_gap_s"]
    return float(min(hi, max(lo, spoken_words(reply) / pacing["words_per_s"])))


def first_word_s(clip: dict) -> float:
    words = clip.get("words") or []
    return float(words[0]["start_s"]) if words else 0.0


def place_at(clip: dict, first_word_at: float, audio_end: float, pacing: dict) -> float:
    """Where a clip starts so that its first word is at ``first_word_at``, but never before the
    audio before it (``audio_end``) has ended."""
    return max(first_word_at - first_word_s(clip), audio_end + pacing["min_clip_gap_s"])


def background(ctx: PlanContext, pacing: dict) -> SegmentPlan:
    """The bed under the whole stream: a near-silent room or an audible one."""
    rng = ctx.rng
    level = "audible" if rng.random() < pacing["audible_bed_p"] else "quiet"
    return background_bed(ctx.pools["noise"].choice(rng), float(rng.uniform(*pacing["bed_gain_db"][level])))


def uniform(rng: np.random.Generator, bounds) -> float:
    return float(rng.uniform(*bounds))


# ---------------------------------------------------------------- one spoken turn
@dataclass
class Spoken:
    """One user turn as heard: its segments (two when it has a mid-turn pause), when its last
    word ends and when its audio ends (episode time), and the stay_silent turn at its pause."""
    clip: dict
    segments: list[SegmentPlan]
    last_word_s: float
    end_s: float
    silent: TurnPlan | None = None


def pause_points(clip: dict, pacing: dict) -> list[int]:
    """The word boundaries a turn may pause at (index of the first word after the pause): with
    at least ``min_words`` words on each side."""
    m = pacing["pause"]["min_words"]
    return list(range(m, len(clip.get("words") or []) - m + 1))


def pause_point(rng: np.random.Generator, clip: dict, pacing: dict) -> int | None:
    """A word boundary to pause at, or None when the turn is too short: after a word ending with
    a clause mark when there is one."""
    words = clip.get("words") or []
    cands = pause_points(clip, pacing)
    if not cands:
        return None
    marked = [k for k in cands if words[k - 1]["text"][-1:] in pacing["pause"]["prefer_after"]]
    return pick(rng, marked or cands)


def speak(clip: dict, start_s: float, attrs: dict, pause: tuple[int, float] | None = None,
          silent_after_s: float = 0.5, role: str = "user") -> Spoken:
    """A speech clip from ``start_s``; with ``pause=(k, pause_s)`` it is cut before word k and
    its second part comes ``pause_s`` later (two segments of the same clip), with a stay_silent
    turn in the pause whose evidence is the first part."""
    words = clip["words"]
    if pause is None:
        seg = SegmentPlan(clip=clip, start_s=start_s, kind="speech", role=role, attrs=dict(attrs))
        return Spoken(clip, [seg], start_s + words[-1]["end_s"], start_s + clip["duration_s"])
    k, pause_s = pause
    cut = (words[k - 1]["end_s"] + words[k]["start_s"]) / 2  # in the gap between the two words
    first = SegmentPlan(clip=clip, start_s=start_s, kind="speech", role=role, clip_dur_s=cut,
                        text=" ".join(w["text"] for w in words[:k]), attrs={**attrs, "part": 1, "parts": 2})
    at = start_s + cut + pause_s
    second = SegmentPlan(clip=clip, start_s=at, kind="speech", role=role, clip_start_s=cut,
                         text=" ".join(w["text"] for w in words[k:]), attrs={**attrs, "part": 2, "parts": 2})
    heard = start_s + words[k - 1]["end_s"]
    silence = at + words[k]["start_s"] - cut - heard  # from the last word before the pause to the first after
    silent = TurnPlan(trigger_s=heard + min(silent_after_s, silence / 2), kind="stay_silent", evidence=[first])
    return Spoken(clip, [first, second], at + words[-1]["end_s"] - cut, at + clip["duration_s"] - cut, silent)


# ---------------------------------------------------------------- a conversation
@dataclass
class Conversation:
    segments: list[SegmentPlan] = field(default_factory=list)
    turns: list[TurnPlan] = field(default_factory=list)  # replies and stay_silent turns
    spoken: list[Spoken] = field(default_factory=list)  # the user turns, in order
    replies: list[TurnPlan] = field(default_factory=list)
    events: list[SegmentPlan] = field(default_factory=list)
    next_word_s: float = 0.0  # when the user may speak again (the last reply said)
    end_s: float = 0.0  # the end of the last audio placed


def converse(ctx: PlanContext, rows: list[dict], first_word_at: float, pacing: dict, split: bool = False,
             events: dict[int, tuple[dict, str, float]] | None = None, audio_end: float = 0.0) -> Conversation:
    """The user's turns one after another, each answered with its source reply when its last word
    ends; the next turn starts about as long after as the reply takes to say. ``split``: one turn
    long enough gets a mid-turn pause (and a stay_silent turn there). ``events``: turn index ->
    (sound clip, its label, gain): the sound is heard in the gap after that turn's reply."""
    rng = ctx.rng
    conv = Conversation(end_s=audio_end)
    splittable = [i for i, r in enumerate(rows) if pause_points(r, pacing)]
    split_at = pick(rng, splittable) if split and splittable else -1
    next_word = first_word_at
    for i, row in enumerate(rows):
        attrs = {"dialogue": row["dialogue"], "turn": int(row["turn"]), "speaker": row.get("speaker", "")}
        pause = None
        if i == split_at:
            pause = (pause_point(rng, row, pacing), uniform(rng, pacing["pause"]["pause_s"]))
        sp = speak(row, place_at(row, next_word, conv.end_s, pacing), attrs, pause, pacing["pause"]["silent_after_s"])
        reply = TurnPlan(trigger_s=sp.last_word_s, kind="respond", text=row["response"], evidence=list(sp.segments))
        conv.segments += sp.segments
        conv.spoken.append(sp)
        conv.replies.append(reply)
        conv.turns += ([sp.silent] if sp.silent else []) + [reply]
        conv.end_s = max(conv.end_s, sp.end_s)
        gap = reply_gap_s(row["response"], pacing)
        next_word = sp.last_word_s + gap
        if events and i in events:
            clip, label, gain = events[i]
            # in the gap, while the reply would be said, never over the user's audio
            at = max(sp.last_word_s + uniform(rng, pacing["gap_event"]["at"]) * gap, conv.end_s + pacing["min_clip_gap_s"])
            ev = event_segment(clip, at, gain, {"named_label": label})
            conv.segments.append(ev)
            conv.events.append(ev)
            conv.end_s = max(conv.end_s, ev.start_s + ev.clip_dur_s)
            next_word = max(next_word, ev.audible_end_s() + uniform(rng, pacing["gap_event"]["then_s"]))
    conv.next_word_s = next_word
    return conv


# ---------------------------------------------------------------- prompts
def pick_prompt(rng: np.random.Generator, pool, intent: str, about: str, speaker: str = "",
                language: str = "") -> tuple[dict, bool]:
    """A spoken prompt (labels [intent, "about=<about>"]) and whether it is in ``speaker``'s voice:
    one in that voice when the pool has it, else one in any voice (of ``language`` when given)."""
    rows = [r for r in pool.with_label(f"about={about}") if (r.get("labels") or [""])[0] == intent
            and r.get("words") and (not language or r.get("language") == language)]
    if not rows:
        raise PlanError(f"pool {pool.name!r} has no spoken prompt {intent} about={about}"
                        + (f" in {language!r}" if language else ""))
    same = [r for r in rows if speaker and r.get("speaker") == speaker]
    return pick(rng, same or rows), bool(same)


def prompt_topics(pool, intent: str) -> dict[str, set[str]]:
    """language -> the ``about`` values the pool has spoken prompts of ``intent`` for."""
    out: dict[str, set[str]] = {}
    for r in pool.with_label(intent):
        about = next((lab.split("=", 1)[1] for lab in r.get("labels") or [] if lab.startswith("about=")), None)
        if about and r.get("words"):
            out.setdefault(r.get("language") or "", set()).add(about)
    return out


# ---------------------------------------------------------------- sounds and music
def event_label(clip: dict, phrases: dict, rule: bool = False) -> tuple[str, str] | None:
    """(label, phrase) naming a sound-event clip: its first label with a phrase; with ``rule``,
    else its first label as "a <label> sound". None when the clip is not used as an event (no
    measured active span, too long, or a label in skip_labels)."""
    labels = list(clip.get("labels") or [])
    if not labels or not suitable(clip) or any(lab in phrases["skip_labels"] for lab in labels):
        return None
    for lab in labels:
        if lab in phrases["labels"]:
            return lab, phrases["labels"][lab]
    return (labels[0], f"a {labels[0].split(',')[0].strip().lower()} sound") if rule else None


def pick_event(rng: np.random.Generator, pool, phrases: dict) -> tuple[dict, str, str]:
    """(clip, label, phrase) of a sound event: one with a phrase in the table when the pool has
    one, else one named by the rule."""
    for rule in (False, True):
        try:
            clip = pool.choice(rng, where=lambda r, rule=rule: event_label(r, phrases, rule) is not None)
        except PlanError:
            continue
        return (clip, *event_label(clip, phrases, rule))
    raise PlanError(f"pool {pool.name!r} has no sound event that can be named")


def event_segment(clip: dict, start_s: float, gain_db: float, attrs: dict) -> SegmentPlan:
    """A sound event, cut to its active span and a little around it; attrs active_span_s: the
    span in episode time."""
    cut0 = max(0.0, clip["active_start_s"] - PAD_BEFORE_S)
    cut1 = min(clip["duration_s"], clip["active_end_s"] + PAD_AFTER_S)
    span = [round(start_s + clip["active_start_s"] - cut0, 4), round(start_s + clip["active_end_s"] - cut0, 4)]
    return SegmentPlan(clip=clip, start_s=start_s, kind="sound", role="environment", gain_db=gain_db,
                       clip_start_s=cut0, clip_dur_s=cut1 - cut0, attrs={**attrs, "active_span_s": span})


def clip_attrs(clip: dict) -> dict:
    try:
        a = json.loads(clip.get("attrs") or "{}")
    except json.JSONDecodeError:
        return {}
    return a if isinstance(a, dict) else {}


def genre_of(clip: dict) -> str:
    """A music clip's top-level genre: attrs genre_top, else its first label."""
    return clip_attrs(clip).get("genre_top") or (clip.get("labels") or [""])[0]


def genre_phrase(genre: str, phrases: dict) -> str:
    return phrases["genres"].get(genre) or f"{genre.lower()} music"


def tempo_of(clip: dict) -> float | None:
    t = clip_attrs(clip).get("tempo")
    return float(t) if isinstance(t, (int, float)) and t > 0 else None


def tempo_phrase(bpm: float, phrases: dict) -> str:
    for band in phrases["tempo_bands"]:
        if bpm < band["below_bpm"]:
            return band["phrase"]
    return phrases["tempo_bands"][-1]["phrase"]


def speakers(clips: list[dict]) -> str:
    """The voices of these clips, for provenance."""
    return ",".join(sorted({c.get("speaker", "") for c in clips if c.get("speaker")}))
