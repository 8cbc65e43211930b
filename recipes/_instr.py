"""Helpers shared by the instruction_following recipes (instr_spoken, instr_deferred_trigger,
instr_task_switch, instr_text_prompt). Modules starting with ``_`` are not recipes."""
from __future__ import annotations

import numpy as np

from streamaudio.plan import PlanError, SegmentPlan, pick
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
