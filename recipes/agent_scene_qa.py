"""agent_scene_qa: the user asks a question whose answer needs the acoustic scene ("should I
take an umbrella?" while rain is audible, "is anyone at the door?" after a knock, "is it quiet
enough to make a call?" over a power tool), 1-3 rounds per episode over a quiet room bed.

Each round is a scene, then the question. The scene is 1-3 sound events from the AudioSet pool
(each cut to its active span), one after another; the spoken question (a `scene_question`
prompt, manifests/spoken_prompts/scene_qa.yaml, about=<intent>, in one user voice where the
prompt pool has it) starts around the end of the last sound, sometimes while it is still heard.

What the answer depends on is data (manifests/scene/scene_qa.yaml): per intent, the AudioSet
labels that decide it. A round is "heard" when its scene holds a clip with one of them (the
answer names it: "Yes, take one: I can hear rain outside.") and "not_heard" when none of the
episode's clips carries one (the answer says so and names what was heard instead: "I don't hear
any rain, just a fan humming, so you probably won't need one."); both cases occur (heard_p).
The intents of one episode share no label, and no clip in an episode carries a label of another
round's intent, so every answer is decided by its own round alone. Only clips whose labels all
have a phrase in the table are drawn (no hazard slips into a scene), and a crying baby is heard
only when the question is about the baby.

The answer is due when the question's last word ends (after every sound of its scene has been
heard); its evidence is the question and the sounds it relies on: the relevant sound for a
heard round, the whole scene of the round for a not_heard one. The question's attrs say the
intent, the case, the yes/no answer and the labels relied on; each sound's attrs its round and
whether it is relevant. Answer templates are an AnswerTemplates table: with an LLM, paraphrases
are added only when they keep the placeholders, so every answer still names its grounding
sounds; offline, the reviewed templates."""
from __future__ import annotations

import numpy as np

from streamaudio.plan import (AnswerTemplates, EpisodePlan, InstructionBank, PlanContext, PlanError, PoolSpec, Recipe,
                              SegmentPlan, TurnPlan, background_bed, pick)
from streamaudio.text.curation import suitable

from ._dialogue import event_segment, first_word_s, pick_prompt, prompt_topics, speakers, spoken_words, uniform
from ._instr import fill
from ._speech import aligners

INTENT = "scene_question"
MIN_ACTIVE_S = 0.3  # a shorter active span is a click, not a sound anyone could name
QUESTION_AFTER_SCENE_S = 0.05  # the question's last word ends at least this long after the scene's last sound


# ---------------------------------------------------------------- scene clips (label index, no scans)
def rows_with(pool, labels) -> np.ndarray:
    """Row numbers of the clips carrying any of ``labels``."""
    parts = [pool.with_label(lab).indices for lab in labels]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def scene_rows(pool, named) -> np.ndarray:
    """Clips every label of which has a phrase in the table."""
    named = set(named)
    return np.setdiff1d(rows_with(pool, named), rows_with(pool, [lab for lab in pool.labels() if lab not in named]))


def draw(pool, rows: np.ndarray, rng, k: int, used: set[str]) -> list[dict]:
    """Up to k suitable clips (an active span found, short enough) from ``rows``, distinct and not
    in ``used`` where the rows allow; repeats only when every suitable clip is used already."""
    if k <= 0:
        return []
    found, spare = [], []
    for i in rng.permutation(rows):  # random order: reads about k rows, not the whole pool
        row = pool.row(int(i))
        if not suitable(row) or row["active_end_s"] - row["active_start_s"] < MIN_ACTIVE_S:
            continue
        (spare if row["id"] in used else found).append(row)
        if len(found) == k:
            break
    out = found + spare[: k - len(found)]
    used.update(r["id"] for r in out)
    return out


def phrase_of(clip: dict, phrases: dict) -> str:
    return next(phrases[lab] for lab in clip["labels"] if lab in phrases)


def join_phrases(items: list[str]) -> str:
    items = list(dict.fromkeys(items))
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# ---------------------------------------------------------------- planning
def choose_intents(rng, table: dict, available: list[str], n: int) -> list[str]:
    """Up to n intents that share no label (so no sound can decide two answers)."""
    chosen, taken = [], set()
    for k in rng.permutation(len(available)):
        intent = available[int(k)]
        labels = set(table["intents"][intent]["labels"])
        if labels & taken:
            continue
        chosen.append(intent)
        taken |= labels
        if len(chosen) == n:
            break
    return chosen


def plan(ctx: PlanContext) -> EpisodePlan:
    rng = ctx.rng
    table = ctx.tables["scene"]
    intents, phrases = table["intents"], table["labels"]
    events, prompts = ctx.pools["events"], ctx.pools["prompts"]
    topics = prompt_topics(prompts, INTENT)
    asked = set().union(*topics.values()) if topics else set()
    allowed = scene_rows(events, phrases)
    available = [i for i in sorted(intents) if i in asked]
    if not available:
        raise PlanError(f"the prompts pool has no spoken {INTENT} prompt for an intent of scene/scene_qa.yaml")
    chosen = choose_intents(rng, table, available, int(rng.integers(table["rounds"][0], table["rounds"][1] + 1)))
    # no clip of the episode may carry a label of an intent other than its own round's
    episode_labels = {lab for i in chosen for lab in intents[i]["labels"]}
    background_rows = np.setdiff1d(allowed, rows_with(events, episode_labels | set(table["only_when_asked"])))

    segments = [background_bed(ctx.pools["noise"].choice(rng), uniform(rng, table["bed_gain_db"]))]
    turns, prompt_clips, used = [], [], set()
    t = uniform(rng, table["lead_s"])
    voice = language = ""
    last_answer = None
    for r, intent in enumerate(chosen):
        spec = intents[intent]
        others = episode_labels - set(spec["labels"])
        relevant_rows = np.setdiff1d(np.intersect1d(allowed, rows_with(events, spec["labels"])),
                                     rows_with(events, others))
        n_sounds = int(rng.integers(table["scene_sounds"][0], table["scene_sounds"][1] + 1))
        relevant = draw(events, relevant_rows, rng, 1, used) if rng.random() < table["heard_p"] else []
        scenery = draw(events, background_rows, rng, n_sounds - len(relevant), used)
        if not relevant and not scenery:  # nothing to hear but the relevant sound: a heard round then
            relevant = draw(events, relevant_rows, rng, 1, used)
        if not relevant and not scenery:
            raise PlanError(f"pool {events.name!r} has no suitable scene clip for {intent!r}")
        case = "heard" if relevant else "not_heard"
        clips = scenery + relevant
        clips = [clips[int(i)] for i in rng.permutation(len(clips))]

        # the scene: each sound after the previous one's active span has ended
        scene = []
        for clip in clips:
            is_relevant = bool(set(clip["labels"]) & set(spec["labels"]))
            seg = event_segment(clip, t, uniform(rng, table["sound_gain_db"]), {
                "scene_round": r, "phrase": phrase_of(clip, phrases), "relevant_to": intent if is_relevant else ""})
            scene.append(seg)
            t = seg.audible_end_s() + uniform(rng, table["sound_gap_s"])
        heard_by = max(s.audible_end_s() for s in scene)
        last_active = scene[-1].attrs["active_span_s"]

        # the question: around the last sound's end, sometimes over it, ending after all of it
        prompt, same = pick_prompt(rng, prompts, INTENT, intent, speaker=voice, language=language)
        words = prompt["words"]
        first_word_at = max(heard_by + uniform(rng, table["question_at_s"]), last_active[0] + 0.5)
        q_start = first_word_at - first_word_s(prompt)
        q_start += max(0.0, heard_by + QUESTION_AFTER_SCENE_S - (q_start + words[-1]["end_s"]))
        trigger = q_start + words[-1]["end_s"]
        if last_answer is not None and trigger < last_answer + 0.8:
            raise PlanError("two answers closer than two chunks")  # cannot happen with the table's gaps
        relied = [s for s in scene if s.attrs["relevant_to"]] if case == "heard" else scene
        q = SegmentPlan(clip=prompt, start_s=q_start, kind="speech", role="user", attrs={
            "intent": INTENT, "about": intent, "case": case, "answer": spec[case], "scene_round": r,
            "relies_on": sorted({lab for s in relied for lab in s.clip["labels"]}),
            "prompt_voice": "first" if not voice else ("user" if same else "other")})
        voice = voice or prompt.get("speaker", "")
        language = language or prompt.get("language", "")
        key = f"{intent}.{case}"
        if case == "heard":
            values = {"heard": join_phrases([s.attrs["phrase"] for s in relied])}
        else:
            values = {"absent": spec["absent"], "scene": join_phrases([s.attrs["phrase"] for s in scene])}
        text = fill(pick(rng, table["templates"][key]), **values)
        segments += [*scene, q]
        turns.append(TurnPlan(trigger_s=trigger, kind="respond", text=text, evidence=[q, *relied]))
        prompt_clips.append(prompt)
        last_answer = trigger
        # the next scene after the answer would have been said
        say_s = min(table["answer_gap_s"][1], max(table["answer_gap_s"][0], spoken_words(text) / table["words_per_s"]))
        t = max(trigger + say_s, q_start + prompt["duration_s"]) + uniform(rng, table["lead_s"])
    return EpisodePlan(
        segments=segments, turns=turns, language=language or "en",
        system_prompt=pick(rng, ctx.tables["instructions"]["system_prompts"]),
        min_duration_s=last_answer + uniform(rng, table["tail_s"]),
        text_writer="answer-templates+" + "+".join(sorted({c["text_by"] for c in prompt_clips if c.get("text_by")})),
        tts=speakers(prompt_clips), aligner=aligners(prompt_clips),
    )


RECIPE = Recipe(
    subtask="agent_scene_qa", ability="environment_agent", version="1",
    pools={"prompts": PoolSpec("speech", requires=("words", "intent"), description="spoken prompts (scene_question)"),
           "events": PoolSpec("sound", requires=("labels", "active_span"), description="labelled sound events"),
           "noise": PoolSpec("noise", description="background beds")},
    tables={"scene": AnswerTemplates("scene/scene_qa.yaml"),
            "instructions": InstructionBank("instructions/agent_scene_qa.yaml")},
    plan=plan, description=__doc__,
)
