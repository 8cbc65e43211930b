"""proactive_safety: hazards (breaking glass, sirens, explosions, fire crackle, car and smoke
alarms, skids, thunder, power tools) among benign everyday events over a quiet background bed,
with no user request. Every event states its context in the segment's attrs ("power tool left
running in an empty room", "a neighbour drilling behind the wall") and the sound policy over
the AudioSet ontology (manifests/policy/sound_policy.yaml, streamaudio.text.sound_policy)
decides under it: a hazard that needs action gets an urgent reply shortly after its active span
ends (its evidence: the event's segment); a benign event, or a hazard sound in a harmless
context, gets an explicit stay_silent turn there. Which classes and contexts make the scenes is
data: manifests/policy/proactive_safety.yaml; with an LLM, checked contexts it wrote for the
hazard classes join them."""
from streamaudio.plan import (EpisodePlan, InstructionBank, PlanContext, PlanError, PoolSpec, Recipe, SegmentPlan,
                              TurnPlan, YamlTable, background_bed, pick)
from streamaudio.text.sound_policy import SoundPolicyTable, contexts_for, decide

PAD_BEFORE_S, PAD_AFTER_S = 0.2, 0.3  # keep a little of the clip around its active span
MAX_EVENT_S = 10.0
TRIES = 8  # clips tried for a hazard whose context must lead to a reply
DRAW_LIMIT = 64  # rows of a label looked at for a usable clip


def usable(r: dict) -> bool:
    a0, a1 = r.get("active_start_s"), r.get("active_end_s")
    return a0 is not None and a1 is not None and 0 <= a0 < a1 and a1 - a0 <= MAX_EVENT_S


def draw(ctx: PlanContext, label: str, ok=usable) -> dict | None:
    """A random clip of ``label`` that passes ``ok``, reading rows one by one in a seeded order
    (a label may have many thousand clips); None when none of the first DRAW_LIMIT does."""
    rows = ctx.pools["events"].with_label(label)
    for i in ctx.rng.permutation(len(rows))[:DRAW_LIMIT]:
        r = rows[int(i)]
        if ok(r):
            return r
    return None


def hazard_contexts(label: str, scenes: dict, policy: dict) -> list[str]:
    """The scene table's contexts for a hazard class, and any an LLM wrote for it (an urgent
    reply or a harmless situation only: every reply in this sub-task is urgent)."""
    mine = list(scenes["hazards"][label])
    written = [c["context"] for c in contexts_for(label, policy)
               if c.get("writer", "table") != "table" and (c["decision"] == "ignore" or c["emotion"] == "urgent")]
    return mine + [c for c in written if c not in mine]


def plan(ctx: PlanContext) -> EpisodePlan:
    rng, scenes, policy = ctx.rng, ctx.tables["scenes"], ctx.tables["policy"]
    choose = lambda items: pick(rng, items)  # noqa: E731
    pool = ctx.pools["events"]
    haz_names = set(scenes["hazards"])
    # a benign clip carries no hazard label and nothing the policy answers on its own
    calm = lambda r: usable(r) and not haz_names & set(r["labels"]) and not decide(r["labels"], None, policy).respond  # noqa: E731
    hazards = [c for c in scenes["hazards"] if pool.label_count(c)]
    benign = [c for c in scenes["benign"] if pool.label_count(c)]
    if not hazards:
        raise PlanError(f"the {ctx.split} split of pool 'events' has no clip of a hazard class "
                        f"({', '.join(scenes['hazards'])})")
    n_events = int(rng.integers(scenes["events"][0], scenes["events"][1] + 1))
    n_haz = int(rng.integers(scenes["hazard_events"][0], scenes["hazard_events"][1] + 1))
    n_haz = max(1, min(n_haz, n_events)) if benign else n_events
    # (label, clip, context, decision) per event; the first hazard is one that needs a reply
    events = []
    for k in range(n_haz):
        for _ in range(TRIES):
            label = pick(rng, hazards)
            clip, context = draw(ctx, label), pick(rng, hazard_contexts(label, scenes, policy))
            if clip is None:
                continue
            d = decide(clip["labels"], context, policy, choose)
            if k or (d.respond and d.emotion == "urgent"):
                break
        else:
            raise PlanError(f"no hazard of policy/proactive_safety.yaml led to an urgent reply in {TRIES} tries "
                            f"(clips with an active span, contexts the sound policy answers)")
        if d.respond and d.emotion != "urgent":  # a non-urgent reply does not belong in this sub-task
            raise PlanError(f"{label!r} under {context!r} gets a {d.emotion} reply ({d.rule}), not an urgent one")
        events.append((label, clip, context, d))
    for _ in range(n_events - n_haz):
        label = pick(rng, benign)
        clip, context = draw(ctx, label, calm), pick(rng, scenes["benign"][label])
        if clip is None:
            continue  # no calm clip of it here: one event fewer
        d = decide(clip["labels"], context, policy, choose)
        if d.respond:
            raise PlanError(f"the benign {label!r} under {context!r} gets a reply ({d.rule})")
        events.append((label, clip, context, d))
    events = [events[int(i)] for i in rng.permutation(len(events))]

    segments = [background_bed(ctx.pools["noise"].choice(rng), float(rng.uniform(-34.0, -24.0)))]
    turns = []
    lo, hi = scenes["delay_s"]
    t = float(rng.uniform(0.8, 2.0))
    for label, clip, context, d in events:
        cut0 = max(0.0, clip["active_start_s"] - PAD_BEFORE_S)
        cut1 = min(clip["duration_s"], clip["active_end_s"] + PAD_AFTER_S)
        seg = SegmentPlan(clip=clip, start_s=t, kind="music" if label == "Music" else "sound", role="environment",
                          gain_db=float(rng.uniform(-6.0, 0.0)), clip_start_s=cut0, clip_dur_s=cut1 - cut0,
                          attrs={"context": context, "event": label, "decision": d.decision, "rule": d.rule,
                                 "hazard": label in haz_names})
        segments.append(seg)
        # due a moment after the event's active span ends (its audible end: the turn's evidence)
        trigger = t + (clip["active_end_s"] - cut0) + float(rng.uniform(lo, hi))
        if d.respond:
            turns.append(TurnPlan(trigger_s=trigger, kind="respond", text=d.reply, emotion=d.emotion, evidence=[seg]))
        else:
            turns.append(TurnPlan(trigger_s=trigger, kind="stay_silent", evidence=[seg]))
        # the next event starts after this one has faded, and at least two chunks after its turn
        t = max(t + (cut1 - cut0) + float(rng.uniform(*scenes["gap_s"])), trigger + 0.8)
    return EpisodePlan(segments=segments, turns=turns, language="",
                       system_prompt=pick(rng, ctx.tables["instructions"]["system_prompts"]), min_duration_s=t,
                       text_writer=f"sound-policy:{policy.get('writer', 'table')}")


RECIPE = Recipe(
    subtask="proactive_safety", ability="proactive_response", version="1",
    pools={"events": PoolSpec("sound", requires=("labels", "active_span"), description="labelled sound events"),
           "noise": PoolSpec("noise", description="background beds")},
    tables={"scenes": YamlTable("policy/proactive_safety.yaml"),
            "policy": SoundPolicyTable(classes_from="scenes"),
            "instructions": InstructionBank("instructions/proactive_safety.yaml")},
    plan=plan, description=__doc__,
)
