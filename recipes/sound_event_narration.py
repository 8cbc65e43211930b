"""sound_event_narration: 3-6 labelled sound events (AudioSet) one after another over a quiet
background bed, following a curated scenario where the build curated one for the split
(morning routine, street corner, ...: streamaudio.text.curation, settings in
manifests/audio/narration.yaml), else drawn at random. A moment after each event's active span
ends (0.3-1.0 s), the assistant says a short description of it from its labels: an LLM-written
description of its label set where the build had an LLM and the description passed its checks
(recipes/_events.py NarrationDescriptions), else a template ("I just heard {phrase}.") filled
with the phrase of its most specific label (narration.yaml phrases, or the label's own name).
Every description names that phrase; descriptions are at least two chunks apart. Hazards,
distress and speech are never narrated (never_events: they belong to other sub-tasks)."""
from streamaudio.plan import (CuratedScenarios, EpisodePlan, InstructionBank, PlanContext, PlanError, PoolSpec, Recipe,
                              TurnPlan, background_bed, pick)
from streamaudio.text.curation import ground_in_pool

from ._events import NarrationDescriptions, clip_end, event_name, event_segment, label_set_key, sentence, usable_event


def from_scenario(ctx: PlanContext, scenarios: list[dict], table: dict) -> tuple[list[dict], str]:
    """Clips of a curated scenario grounded in this split's pool, and its title; a scenario
    whose events cannot all be grounded in usable clips is skipped for another one."""
    rng = ctx.rng
    for k in rng.permutation(len(scenarios)):
        scenario = scenarios[int(k)]
        clips = [ground_in_pool(e, ctx.pools["events"], rng) for e in scenario["events"]]
        if all(c is not None and usable_event(c, table) for c in clips):
            return clips, scenario["title"]
    return [], ""


def draw_events(ctx: PlanContext, table: dict) -> list[dict]:
    """Usable clips at random, distinct while the split has enough."""
    rng, pool = ctx.rng, ctx.pools["events"]
    lo, hi = table["events"]
    k = int(rng.integers(lo, hi + 1))
    usable = lambda r: usable_event(r, table)  # noqa: E731
    clips = pool.sample(rng, k, where=usable, repeats=False)
    if len(clips) < lo:  # a small split: its few clips again
        clips = pool.sample(rng, k, where=usable)
    return clips


def description(rng, table: dict, clip: dict, phrase: str) -> str:
    """The LLM's descriptions of the clip's label set where the build wrote them, else a template."""
    written = table["descriptions"].get(label_set_key(clip["labels"]))
    if written:
        return pick(rng, written)
    return sentence(pick(rng, table["templates"]), phrase=phrase)


def plan(ctx: PlanContext) -> EpisodePlan:
    rng, table = ctx.rng, ctx.tables["narration"]
    scenarios = (ctx.tables.get("scenarios") or {}).get("by_split", {}).get(ctx.split)
    clips, title = from_scenario(ctx, scenarios, table) if scenarios else ([], "")
    if not clips:  # no curation ran (a bare planning call) or nothing grounded here
        clips = draw_events(ctx, table)
    segments = [background_bed(ctx.pools["noise"].choice(rng), float(rng.uniform(*table["bed_gain_db"])))]
    turns: list[TurnPlan] = []
    t = float(rng.uniform(*table["lead_s"]))
    gap = float(table["min_reply_gap_s"])
    for k, clip in enumerate(clips):
        label, phrase = event_name(clip["labels"], table)
        attrs = {"event": k, "narrated_label": label, "phrase": phrase, **({"scenario": title} if title else {})}
        seg = event_segment(clip, t, float(rng.uniform(*table["sound_gain_db"])), table["pad_s"], attrs)
        segments.append(seg)
        trigger = seg.audible_end_s() + float(rng.uniform(*table["reply_delay_s"]))  # after its active span
        if turns and trigger < turns[-1].trigger_s + gap:
            raise PlanError("two descriptions closer than two chunks")  # the placement below rules it out
        turns.append(TurnPlan(trigger_s=trigger, kind="respond", text=description(rng, table, clip, phrase),
                              evidence=[seg]))
        # the next event after this one's audio, and after the description has begun
        t = max(clip_end(seg) + float(rng.uniform(*table["gap_s"])), trigger + gap)
    end = max(clip_end(segments[-1]), turns[-1].trigger_s)
    return EpisodePlan(segments=segments, turns=turns, language="",
                       system_prompt=pick(rng, ctx.tables["instructions"]["system_prompts"]),
                       min_duration_s=end + float(rng.uniform(*table["tail_s"])),
                       text_writer="template-table:sound_event_narration")


RECIPE = Recipe(
    subtask="sound_event_narration", ability="audio_understanding", version="1",
    pools={"events": PoolSpec("sound", requires=("labels", "active_span"), description="labelled sound events"),
           "noise": PoolSpec("noise", description="background beds")},
    tables={"narration": NarrationDescriptions("audio/narration.yaml", pool="events"),
            "instructions": InstructionBank("instructions/sound_event_narration.yaml"),
            "scenarios": CuratedScenarios("audio/narration.yaml", pool="events", policy="narration")},
    plan=plan, description=__doc__,
)
