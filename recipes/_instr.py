"""Helpers shared by the instruction_following recipes (instr_spoken, instr_deferred_trigger,
instr_task_switch, instr_text_prompt). Modules starting with ``_`` are not recipes."""
from __future__ import annotations

import numpy as np

from streamaudio.plan import PlanError, SegmentPlan, TurnPlan, background_bed, pick
from streamaudio.text.curation import suitable
from streamaudio.text.summaries import words_of
from streamaudio.text.templates import AnswerTemplates

__all__ = ["AnswerTemplates", "clip_end", "fill", "part_text", "prompt_values", "rule_matches", "split_at_word",
           "spoken_prompt", "templates", "tokens"]


def tokens(text: str) -> list[str]:
    """Lower-cased words, for matching against keyword tables."""
    return [w.lower().replace("’", "'") for w in words_of(text)]


def fill(template: str, **values) -> str:
    """A reply template with its placeholders filled and its first letter capitalised (an LLM
    paraphrase may start with a placeholder such as {label_phrase})."""
    text = " ".join(template.format(**values).split())
    return text[:1].upper() + text[1:]


def templates(ctx, table: str, key: str) -> list[str]:
    """The texts of one key of an AnswerTemplates table; a missing key is a table bug."""
    found = (ctx.tables[table].get("templates") or {}).get(key)
    if not found:
        raise KeyError(f"table {table!r} has no templates for {key!r}")
    return found


def spoken_prompt(pool, rng, intent: str, slot_value: str, speaker: str | None = None) -> tuple[dict, bool]:
    """A spoken prompt with these labels, in the episode's user voice when the pool has it
    (prompts come in several voice slots) and in any voice otherwise. Returns (clip, voice
    matched). The label index makes this cheap on any pool size."""
    rows = [r for r in pool.with_label(slot_value) if intent in r["labels"] and r.get("words")]
    if not rows:
        raise PlanError(f"pool {pool.name!r} has no spoken prompt labelled {intent}/{slot_value}")
    same = [r for r in rows if speaker and r["speaker"] == speaker]
    return (pick(rng, same), True) if same else (pick(rng, rows), False)


def prompt_values(pool, intent: str, slot: str) -> list[str]:
    """The slot values the pool has spoken prompts of ``intent`` for (e.g. notify_when ->
    AudioSet labels). Intents may share slot values (notify_when and count_when both have
    label=Dog), so a value counts only where one row carries both labels: an intersection of
    the two label indices, no row read."""
    with_intent = pool.with_label(intent).indices
    return [label.split("=", 1)[1] for label in pool.labels()
            if label.startswith(f"{slot}=") and np.intersect1d(pool.with_label(label).indices, with_intent).size]


TARGET_TRIES = 64


def target_clips(pool, label: str, rng, k: int) -> list[dict]:
    """Up to k distinct suitable clips of a label (an event found, short enough to place),
    drawn at random from the label index: a few reads however many clips carry the label;
    repeated when fewer exist."""
    rows = pool.with_label(label)
    out: dict[str, dict] = {}
    for _ in range(TARGET_TRIES):
        if len(out) == k or not len(rows):
            break
        r = rows[int(rng.integers(len(rows)))]
        if suitable(r):
            out.setdefault(r["id"], r)
    if not out:  # few suitable clips: look at them all
        out = {r["id"]: r for r in rows if suitable(r)}
    found = list(out.values())
    return [found[i % len(found)] for i in range(k)] if found else []


def clip_end(seg: SegmentPlan) -> float:
    """Episode time at which a segment's audio (not just its speech) ends."""
    avail = seg.clip["duration_s"] - seg.clip_start_s
    return seg.start_s + (avail if seg.clip_dur_s is None else min(seg.clip_dur_s, avail))


def split_at_word(clip: dict, rng, min_each_side: int, after: set[str] | None = None) -> float | None:
    """A clip-time cut between two words with at least ``min_each_side`` words on either side
    and, when ``after`` is given, right after one of those words (lower case: words such as
    "the" or "of" after which a request cannot be over, so the first part is plainly
    unfinished). The cut is the middle of the silence between the two words (or the first
    word's end when they touch), so both parts hold their words whole. None: no such place."""
    words = clip.get("words") or []
    places = [i for i in range(min_each_side, len(words) - min_each_side + 1)  # words[:i] | words[i:]
              if after is None or words[i - 1]["text"].lower().strip(".,;:!?'\"") in after]
    if not places:
        return None
    i = places[int(rng.integers(len(places)))]
    left, right = words[i - 1]["end_s"], words[i]["start_s"]
    return round((left + right) / 2, 4) if right > left else left


def part_text(clip: dict, lo: float, hi: float) -> str:
    """The words of a clip between two clip-time cuts (the transcript of one part of a split)."""
    return " ".join(w["text"] for w in clip["words"] if w["start_s"] >= lo - 1e-6 and w["end_s"] <= hi + 1e-6)


# ---------------------------------------------------------------- text-prompt rules
def rule_matches(text: str, condition: dict, number_words: list[str]) -> list[str]:
    """What in an utterance fires a rule's condition (empty: it does not fire), in order.
    ``keywords``: words equal to a keyword, or starting with a "stem*" keyword. ``numbers``:
    runs of number words or digits, "and" kept inside a run ("two hundred and forty")."""
    words = tokens(text)
    found: list[str] = []
    if condition.get("keywords"):
        exact = {k for k in condition["keywords"] if not k.endswith("*")}
        stems = tuple(k[:-1] for k in condition["keywords"] if k.endswith("*"))
        found += [w for w in words if w in exact or (stems and w.startswith(stems))]
    if condition.get("numbers"):
        numeric = set(number_words)
        is_num = lambda w: w in numeric or w.replace(",", "").replace(".", "").isdigit()  # noqa: E731
        run: list[str] = []
        for i, w in enumerate(words + [""]):
            if is_num(w) or (w == "and" and run and i + 1 < len(words) and is_num(words[i + 1])):
                run.append(w)
            elif run:
                found.append(" ".join(run))
                run = []
    return found


# ---------------------------------------------------------------- "listen for X" streams
# instr_deferred_trigger and sound_event_counting: a request to listen for a sound X, then X
# among distractors; they differ only in the intent of the spoken request and in the reply.
def pick_target(ctx, cfg: dict, n_targets: int, intent: str, table: str) -> tuple[str, list[dict], dict, bool]:
    """(target label, its clips, its table entry, whether the request is spoken): a label of the
    table that the sound pool has a placeable clip of; spoken when the prompts pool has an
    ``intent`` prompt for it (and the draw says so)."""
    rng, events, prompts = ctx.rng, ctx.pools["events"], ctx.pools.get("prompts")
    candidates = [lab for lab in cfg["labels"] if events.label_count(lab)]
    if not candidates:
        raise PlanError(f"pool {events.name!r} has none of the target labels of {table}")
    for k in rng.permutation(len(candidates)):  # a label with a clip that can be placed
        target = candidates[int(k)]
        hits = target_clips(events, target, rng, n_targets)
        if hits:
            break
    else:
        raise PlanError(f"pool {events.name!r} has no suitable clip of any target label ({candidates})")
    spoken = (prompts is not None and target in prompt_values(prompts, intent, "label")
              and rng.random() < cfg["spoken_probability"])
    return target, hits, cfg["labels"][target], spoken


def watch_stream(ctx, cfg: dict, intent: str, target: str, hits: list[dict], entry: dict, spoken: bool,
                 reply, record_count: bool = False) -> tuple[list[SegmentPlan], list, float]:
    """Segments (bed first) and turns of a "listen for X" stream, and when its last item ends.
    Distractor sounds (never X, a label meaning X, or a hazard) and other speakers in a random
    order, each X right after a different distractor (never first, never two in a row); a
    stay_silent turn on the spoken request and on every distractor, ``reply(k)`` (the k-th X, from
    1) a moment after each X's active span ends. ``record_count``: each X's attrs say its k."""
    rng, events, prompts, others = ctx.rng, ctx.pools["events"], ctx.pools.get("prompts"), ctx.pools.get("other")
    n_sounds = int(rng.integers(cfg["distractor_sounds"][0], cfg["distractor_sounds"][1] + 1))
    n_speech = int(rng.integers(cfg["distractor_speech"][0], cfg["distractor_speech"][1] + 1)) if others else 0
    n_sounds = max(n_sounds, len(hits) - n_speech)  # a distractor before every X
    # a sound no assistant may stay silent on (a smoke alarm, a scream) is never a distractor
    never = {target, *entry.get("same_as", [])} | set(cfg.get("never_distractors") or ())
    distractors = events.sample(rng, n_sounds, where=lambda r: suitable(r) and not never & set(r["labels"]))
    if not distractors or never & {lab for c in distractors for lab in c["labels"]}:
        raise PlanError(f"pool {events.name!r} has no suitable distractor without {target!r} or a hazard")
    talk = others.sample(rng, n_speech) if n_speech else []
    items = [("distractor", c) for c in distractors] + [("other", c) for c in talk]
    items = [items[int(i)] for i in rng.permutation(len(items))]
    places = sorted(int(i) for i in rng.choice(range(1, len(items) + 1), size=len(hits), replace=False))
    for place, clip in reversed(list(zip(places, hits))):
        items.insert(place, ("target", clip))

    segments = [background_bed(ctx.pools["noise"].choice(rng), float(rng.uniform(*cfg["bed_gain_db"])))]
    turns: list = []
    t = float(rng.uniform(*cfg["lead_s"]))
    if spoken:
        clip, _ = spoken_prompt(prompts, rng, intent, f"label={target}")
        seg = SegmentPlan(clip=clip, start_s=t, kind="speech", role="user", attrs={"request": intent})
        segments.append(seg)
        # the request needs no answer now: a naive model would reply to it (or say it hears nothing)
        trig = seg.audible_end_s() + float(rng.uniform(*cfg["reply_delay_s"]))
        turns.append(TurnPlan(trigger_s=trig, kind="stay_silent", evidence=[seg]))
        t = max(clip_end(seg), trig) + float(rng.uniform(*cfg["gap_s"]))
    heard = 0
    pad0, pad1 = cfg["pad_s"]
    end = t
    for role, clip in items:
        delay = float(rng.uniform(*cfg["reply_delay_s"]))
        if role == "other":
            seg = SegmentPlan(clip=clip, start_s=t, kind="speech", role="other",
                              gain_db=float(rng.uniform(*cfg["speech_gain_db"])), attrs={"distractor": True})
            segments.append(seg)
            trig = seg.audible_end_s() + delay
            turns.append(TurnPlan(trigger_s=trig, kind="stay_silent", evidence=[seg]))
        else:
            cut0 = max(0.0, clip["active_start_s"] - pad0)
            cut1 = min(clip["duration_s"], clip["active_end_s"] + pad1)
            attrs = {"target_label": target, "is_target": role == "target"}
            if role == "target":
                heard += 1
                if record_count:
                    attrs["count"] = heard  # the running count the reply says, for readers of the data
            seg = SegmentPlan(clip=clip, start_s=t, kind="music" if "Music" in clip["labels"] else "sound",
                              role="environment", gain_db=float(rng.uniform(*cfg["sound_gain_db"])),
                              clip_start_s=cut0, clip_dur_s=cut1 - cut0, attrs=attrs)
            segments.append(seg)
            trig = seg.audible_end_s() + delay  # the active span's end: X has been heard in full
            if role == "target":
                turns.append(TurnPlan(trigger_s=trig, kind="respond", evidence=[seg], text=reply(heard)))
            else:
                turns.append(TurnPlan(trigger_s=trig, kind="stay_silent", evidence=[seg]))
        # the next item starts after this one and at least two chunks after its turn
        end = max(clip_end(seg), trig)
        t = max(clip_end(seg) + float(rng.uniform(*cfg["gap_s"])), trig + 0.8)
    return segments, turns, end
