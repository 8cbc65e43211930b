"""audio_qa: sound events one after another over a quiet background bed (3-6 before the first
question), the assistant silent through all of them (a stay_silent turn a moment after each
event's active span ends), then a spoken question from the user about what was heard so far; at
its last word, the answer computed from the timeline. 1-3 rounds of new events and a question,
in one user voice where the prompts pool has it. Questions (manifests/spoken_prompts/audio_qa.yaml):

- "did you hear X?": yes, with how long ago (and how many times when more than once), or a true
  no: X is then absent from every clip placed in the episode (before the question and after it),
  and so is every label that also means X or might (the `same_as` and `not_sure` of
  manifests/audio/qa_answers.yaml: AudioSet labels are weak and hierarchical);
- "what happened before / after X?": the event immediately before / after the one X event, or
  that there was none;
- "how many times did X happen?": the number of event segments carrying X (or a label that means
  X), none included.

A label is only asked about while no clip in the stream carries one of its not_sure labels
without it, so every answer is sure. Yes and no are drawn with probability 0.5 each. The answer
is a template of the answers table (FactCheckedAnswers: LLM paraphrases must keep the yes or the
no, the count and the phrases), filled with phrases from manifests/audio/narration.yaml; the
question segment's attrs record the question and the facts of its answer. Hazards, distress and
speech are never placed (narration.yaml never_events)."""
from __future__ import annotations

from dataclasses import dataclass

from streamaudio.plan import (EpisodePlan, InstructionBank, PlanContext, PlanError, PoolSpec, Recipe, SegmentPlan,
                              TurnPlan, YamlTable, background_bed, pick)

from ._events import (FactCheckedAnswers, clip_end, event_name, event_segment, join_phrases, phrase_of, sentence,
                      usable_event)
from ._instr import prompt_values, spoken_prompt
from ._speech import aligners

# question kind -> the intent of its spoken prompts
INTENTS = {"heard": "heard_question", "before": "before_question", "after": "after_question",
           "count": "how_many_question"}
FAMILIES = {"heard": ("heard",), "count": ("count",), "order": ("before", "after")}
LISTED = 3  # a "no" names at most this many of the sounds heard instead
DRAWS = 64  # random reads of a label's clips before looking at all of them


@dataclass
class Question:
    kind: str  # heard, before, after, count
    label: str
    clips: list[dict]  # clips of the label to place before it, in this round
    edge: bool = False  # place the label's event first (before) or last (after) in the round


def means(labels, label: str, cfg: dict) -> bool:
    """Whether a clip with these labels is an occurrence of ``label``."""
    return bool(set(labels) & {label, *cfg["labels"][label]["same_as"]})


def occurrences(placed: list[SegmentPlan], label: str, cfg: dict) -> list[SegmentPlan]:
    return [s for s in placed if means(s.clip["labels"], label, cfg)]


def ambiguous(placed: list[SegmentPlan], label: str, cfg: dict) -> bool:
    """A clip in the stream that may or may not be ``label`` (one of its not_sure labels without it)."""
    unsure = set(cfg["labels"][label]["not_sure"])
    return any(set(s.clip["labels"]) & unsure and not means(s.clip["labels"], label, cfg) for s in placed)


def related(label: str, cfg: dict) -> set[str]:
    entry = cfg["labels"][label]
    return {label, *entry["same_as"], *entry["not_sure"]}


def label_clips(ctx: PlanContext, label: str, k: int, sounds: dict, banned: set[str]) -> list[dict]:
    """k usable clips carrying ``label`` and no banned label, distinct while the split has enough
    (random reads from the label index, then all of them when few fit); [] when there is none."""
    rows = ctx.pools["events"].with_label(label)
    rng = ctx.rng
    fits = lambda r: usable_event(r, sounds) and not banned & set(r["labels"])  # noqa: E731
    found: dict[str, dict] = {}
    for _ in range(DRAWS):
        if len(found) == k or not len(rows):
            break
        r = rows[int(rng.integers(len(rows)))]
        if fits(r):
            found.setdefault(r["id"], r)
    if not found:
        found = {r["id"]: r for r in rows if fits(r)}
    clips = list(found.values())
    return [clips[i % len(clips)] for i in range(k)] if clips else []


def family_order(rng, cfg: dict, families: list[str]) -> list[str]:
    """The question families in a random order, the first drawn by question_weights."""
    w = [float(cfg["question_weights"][f]) for f in families]
    first = families[int(rng.choice(len(families), p=[x / sum(w) for x in w]))]
    rest = [families[int(i)] for i in rng.permutation(len(families)) if families[int(i)] != first]
    return [first, *rest]


def choose_question(ctx: PlanContext, cfg: dict, sounds: dict, placed: list[SegmentPlan],
                    askable: dict[str, list[str]], n_new: int, banned: set[str]) -> Question:
    """A question that the stream so far (plus this round's new events) can answer for sure.
    ``banned``: labels an earlier "no" was about (and what might mean them): never placed again."""
    rng = ctx.rng
    families = [f for f, kinds in FAMILIES.items() if any(askable[k] for k in kinds)]
    for family in family_order(rng, cfg, families):
        kinds = list(FAMILIES[family])
        if family == "order" and rng.random() >= cfg["before_probability"]:
            kinds.reverse()
        for kind in kinds:
            labels = [askable[kind][int(i)] for i in rng.permutation(len(askable[kind]))]
            labels = [lab for lab in labels if not ambiguous(placed, lab, cfg)]
            if kind == "heard":
                want_yes = rng.random() < cfg["yes_probability"]
                for yes in (want_yes, not want_yes):
                    q = heard_question(ctx, cfg, sounds, placed, labels, yes, n_new, banned)
                    if q:
                        return q
            elif kind == "count":
                q = count_question(ctx, cfg, sounds, placed, labels, rng.random() < cfg["zero_count_probability"],
                                   n_new, banned)
                if q:
                    return q
            else:
                for lab in labels:
                    have = len(occurrences(placed, lab, cfg))
                    if have > 1:
                        continue
                    clips = label_clips(ctx, lab, 1, sounds, banned) if have == 0 else []
                    if have == 0 and not clips:
                        continue
                    return Question(kind, lab, clips, edge=bool(rng.random() < cfg["edge_probability"]))
    raise PlanError("no question about this stream can be answered for sure (askable labels, prompts and clips)")


def heard_question(ctx, cfg, sounds, placed, labels, yes: bool, n_new: int, banned: set[str]) -> Question | None:
    rng = ctx.rng
    most = max(int(k) for k in cfg["count_words"])  # a yes says how many times: never more than it has words for
    for lab in labels:
        have = len(occurrences(placed, lab, cfg))
        if not yes:
            if have == 0:
                return Question("heard", lab, [])
            continue
        new = (1 + int(rng.random() < cfg["repeat_probability"])) if have == 0 else int(rng.random() < 0.5)
        new = min(new, max(n_new, 1), most - have)
        clips = label_clips(ctx, lab, new, sounds, banned) if new > 0 else []
        if have or clips:
            return Question("heard", lab, clips)
    return None


def count_question(ctx, cfg, sounds, placed, labels, zero: bool, n_new: int, banned: set[str]) -> Question | None:
    rng = ctx.rng
    most = max(int(k) for k in cfg["count_words"])
    for lab in labels:
        have = len(occurrences(placed, lab, cfg))
        if zero:
            if have == 0:
                return Question("count", lab, [])
            continue
        lo, hi = cfg["count_range"]
        total = int(rng.integers(max(lo, have), max(hi, have) + 1))
        new = min(total - have, n_new, most - have)
        clips = label_clips(ctx, lab, new, sounds, banned) if new > 0 else []
        if have or clips:
            return Question("count", lab, clips)
    return None if zero is False else count_question(ctx, cfg, sounds, placed, labels, False, n_new, banned)


def round_items(ctx: PlanContext, cfg: dict, sounds: dict, q: Question, n_new: int, first_round: bool,
                banned: set[str]) -> list[dict]:
    """This round's new clips in order: the question's clips among distractors that carry nothing
    related to the asked label and no banned label."""
    rng = ctx.rng
    n_other = max(0, n_new - len(q.clips))
    avoid = related(q.label, cfg) | banned
    fits = lambda r: usable_event(r, sounds) and not avoid & set(r["labels"])  # noqa: E731
    others: list[dict] = []
    if n_other:
        try:
            others = ctx.pools["events"].sample(rng, n_other, where=fits, repeats=False)
            if len(others) < n_other:
                others = ctx.pools["events"].sample(rng, n_other, where=fits)
        except PlanError:
            others = []  # a split with nothing else: the question's own clips only
    items = [*q.clips, *others]
    items = [items[int(i)] for i in rng.permutation(len(items))]
    if q.edge and q.clips and len(items) > 1:
        target = q.clips[0]
        items.remove(target)
        if q.kind == "after":
            items.append(target)  # the last sound heard: nothing after it yet
        elif first_round:
            items.insert(0, target)  # the first sound heard: nothing before it
        else:
            items.insert(int(rng.integers(len(items) + 1)), target)
    return items


def ago_words(seconds: float) -> str:
    n = int(round(seconds))
    return "a second" if n <= 1 else f"{n} seconds"


def answer(ctx: PlanContext, cfg: dict, sounds: dict, q: Question, placed: list[SegmentPlan],
           question_end: float) -> tuple[str, list[SegmentPlan], dict]:
    """(answer text, the events it rests on, its facts) from the timeline of ``placed``."""
    rng = ctx.rng
    phrase = phrase_of(q.label, sounds)
    occ = occurrences(placed, q.label, cfg)
    words = {int(k): v for k, v in cfg["count_words"].items()}
    values: dict = {"phrase": phrase}
    if q.kind == "heard":
        facts = {"heard": bool(occ), "count": len(occ),
                 "last_heard_end_s": round(occ[-1].audible_end_s(), 3) if occ else None}
        if occ:
            values["ago"] = ago_words(question_end - occ[-1].audible_end_s())
            key = "heard_yes_once" if len(occ) == 1 else "heard_yes_repeated"
            if len(occ) > 1:
                values["count"] = words[len(occ)]
            rests_on = occ
        elif placed and rng.random() < cfg["listing_probability"]:
            listed = []
            for s in reversed(placed):  # the latest distinct sounds, said in the order heard
                p = event_name(s.clip["labels"], sounds)[1]
                if p not in [x[1] for x in listed]:
                    listed.insert(0, (s, p))
                if len(listed) == LISTED:
                    break
            listed.sort(key=lambda x: x[0].start_s)
            key, values["heard"] = "heard_no_listing", join_phrases([p for _, p in listed])
            rests_on = [s for s, _ in listed]
        else:
            key, rests_on = "heard_no", []
    elif q.kind == "count":
        facts = {"count": len(occ)}
        key = "count" if occ else "count_zero"
        if occ:
            values["count"] = words[len(occ)]
        rests_on = occ
    else:
        if len(occ) != 1:
            raise PlanError(f"an order question about {q.label!r} heard {len(occ)} times")  # chosen to be once
        i = placed.index(occ[0]) + (-1 if q.kind == "before" else 1)
        neighbour = placed[i] if 0 <= i < len(placed) else None
        facts = {"neighbour_label": event_name(neighbour.clip["labels"], sounds)[0] if neighbour else None,
                 "neighbour_clip": neighbour.clip["id"] if neighbour else None}
        if neighbour is None:
            key = f"{q.kind}_none"
        else:
            key, values["neighbour"] = q.kind, event_name(neighbour.clip["labels"], sounds)[1]
        rests_on = occ + ([neighbour] if neighbour else [])
    text = sentence(pick(rng, ctx.tables["answers"]["templates"][key]), **values)
    return text, rests_on, {**facts, "answer_key": key}


def plan(ctx: PlanContext) -> EpisodePlan:
    rng, cfg, sounds = ctx.rng, ctx.tables["answers"], ctx.tables["sounds"]
    prompts = ctx.pools["prompts"]
    askable = {kind: sorted(set(prompt_values(prompts, intent, "label")) & set(cfg["labels"]))
               for kind, intent in INTENTS.items()}
    if not any(askable.values()):
        raise PlanError(f"pool {prompts.name!r} has no spoken audio_qa question ({', '.join(INTENTS.values())})")
    segments = [background_bed(ctx.pools["noise"].choice(rng), float(rng.uniform(*cfg["bed_gain_db"])))]
    turns: list[TurnPlan] = []
    placed: list[SegmentPlan] = []
    asked: list[dict] = []
    banned: set[str] = set()  # a "no" stays true for the whole episode: its sound is never placed after it
    t = float(rng.uniform(*cfg["lead_s"]))
    voice, last_answer, end = "", None, 0.0
    for r in range(int(rng.integers(cfg["rounds"][0], cfg["rounds"][1] + 1))):
        span = cfg["events_first"] if r == 0 else cfg["events_later"]
        n_new = int(rng.integers(span[0], span[1] + 1))
        q = choose_question(ctx, cfg, sounds, placed, askable, n_new, banned)
        items = round_items(ctx, cfg, sounds, q, n_new, not placed, banned)
        for clip in items:
            label, phrase = event_name(clip["labels"], sounds)
            seg = event_segment(clip, t, float(rng.uniform(*cfg["sound_gain_db"])), cfg["pad_s"],
                                {"event": len(placed), "named_label": label, "phrase": phrase})
            segments.append(seg)
            placed.append(seg)
            # where a naive model would remark on the sound: nobody asked yet
            turns.append(TurnPlan(trigger_s=seg.audible_end_s() + float(rng.uniform(*cfg["silent_delay_s"])),
                                  kind="stay_silent", evidence=[seg]))
            end = clip_end(seg)
            t = end + float(rng.uniform(*cfg["gap_s"]))
        if not placed:
            raise PlanError(f"the {ctx.split} split of pool 'events' has no usable sound event")
        prompt, same = spoken_prompt(prompts, rng, INTENTS[q.kind], f"label={q.label}", speaker=voice or None)
        # after this round's last sound (or, with none, once the last answer has been said)
        q_start = end + float(rng.uniform(*cfg["question_after_s"])) if items else t
        q_seg = SegmentPlan(clip=prompt, start_s=q_start, kind="speech", role="user")
        trigger = q_seg.audible_end_s()  # the question's last word
        if last_answer is not None and trigger < last_answer + 0.8:
            raise PlanError("two answers closer than two chunks")  # the pacing below rules it out
        text, rests_on, facts = answer(ctx, cfg, sounds, q, placed, trigger)
        if q.kind in ("heard", "count") and not occurrences(placed, q.label, cfg):
            banned |= related(q.label, cfg)
        q_seg.attrs = {"intent": INTENTS[q.kind], "question": q.kind, "asked_label": q.label,
                       "asked_phrase": phrase_of(q.label, sounds), "events_before": len(placed),
                       "prompt_voice": "first" if not voice else ("user" if same else "other"), "answer": facts}
        segments.append(q_seg)
        turns.append(TurnPlan(trigger_s=trigger, kind="respond", text=text, evidence=[q_seg, *rests_on]))
        asked.append(prompt)
        voice = voice or prompt.get("speaker", "")
        last_answer = trigger
        end = max(q_start + prompt["duration_s"], trigger)
        say = min(cfg["answer_gap_s"][1], max(cfg["answer_gap_s"][0], len(text.split()) / cfg["words_per_s"]))
        t = max(end, trigger + say) + float(rng.uniform(*cfg["gap_s"]))
    turns.sort(key=lambda x: x.trigger_s)
    return EpisodePlan(segments=segments, turns=turns, language=asked[0].get("language") or "en",
                       system_prompt=pick(rng, ctx.tables["instructions"]["system_prompts"]),
                       min_duration_s=end + float(rng.uniform(*cfg["tail_s"])),
                       text_writer="template-table:audio_qa",
                       tts=",".join(sorted({c["speaker"] for c in asked if c.get("speaker")})),
                       aligner=aligners(asked))


RECIPE = Recipe(
    subtask="audio_qa", ability="audio_understanding", version="1",
    pools={"events": PoolSpec("sound", requires=("labels", "active_span"), description="labelled sound events"),
           "prompts": PoolSpec("speech", requires=("words", "intent"),
                               description="spoken questions (heard/before/after/how_many_question prompts)"),
           "noise": PoolSpec("noise", description="background beds")},
    tables={"sounds": YamlTable("audio/narration.yaml"),
            "answers": FactCheckedAnswers("audio/qa_answers.yaml"),
            "instructions": InstructionBank("instructions/audio_qa.yaml")},
    plan=plan, description=__doc__,
)
