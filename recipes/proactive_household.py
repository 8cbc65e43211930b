"""proactive_household: household sound events over a quiet background bed. The
events follow a curated scenario (streamaudio.text.curation: planned, grounded in the
clip pool and checked at build time). The policy table
(manifests/policy/proactive_household.yaml) decides which events get a helpful reply
shortly after they end and which get an explicit stay-silent turn."""
from streamaudio.plan import (CuratedScenarios, EpisodePlan, InstructionBank, PlanContext, PlanError, PolicyTable,
                              PoolSpec, Recipe, SegmentPlan, TurnPlan, background_bed, pick)
from streamaudio.text.curation import ground_in_pool

PAD_BEFORE_S, PAD_AFTER_S = 0.2, 0.3  # keep a little of the clip around its active span


def decision(labels: list[str], policy: dict) -> tuple[str, dict] | None:
    """The policy entry for a clip: a respond label wins over an ignore label."""
    known = [(lab, policy[lab]) for lab in labels if lab in policy]
    if not known:
        return None
    return next(((lab, p) for lab, p in known if p["action"] == "respond"), known[0])


def from_scenario(ctx: PlanContext, scenarios: list[dict]) -> list[dict]:
    """Clips for a curated scenario, grounded in this split's pool; a scenario whose
    events cannot all be grounded here is skipped for another one."""
    rng = ctx.rng
    for k in rng.permutation(len(scenarios)):
        clips = [ground_in_pool(e, ctx.pools["events"], rng) for e in scenarios[int(k)]["events"]]
        if all(clips):
            return clips
    raise PlanError(f"no curated scenario can be grounded in the {ctx.split} pool")


def plan(ctx: PlanContext) -> EpisodePlan:
    rng = ctx.rng
    policy = ctx.tables["policy"]
    usable = lambda r: r["active_start_s"] >= 0 and decision(r["labels"], policy["labels"]) is not None  # noqa: E731
    acts = lambda r: usable(r) and decision(r["labels"], policy["labels"])[1]["action"] == "respond"  # noqa: E731
    scenarios = (ctx.tables.get("scenarios") or {}).get("by_split", {}).get(ctx.split)
    if scenarios:
        events = from_scenario(ctx, scenarios)
    else:  # no curation ran (a bare planning call): random events, at least one that needs a reply
        events = ctx.pools["events"].sample(rng, int(rng.integers(3, 7)), where=usable)
        if not any(acts(e) for e in events):
            events[int(rng.integers(len(events)))] = ctx.pools["events"].choice(rng, where=acts)
    bed = ctx.pools["noise"].choice(rng)
    segments = [background_bed(bed, float(rng.uniform(-34.0, -24.0)))]
    turns = []
    lo, hi = policy["delay_s"]
    t = float(rng.uniform(0.8, 2.0))
    for clip in events:
        label, entry = decision(clip["labels"], policy["labels"])
        cut0 = max(0.0, clip["active_start_s"] - PAD_BEFORE_S)
        cut1 = min(clip["duration_s"], clip["active_end_s"] + PAD_AFTER_S)
        seg = SegmentPlan(clip=clip, start_s=t, kind="music" if label == "Music" else "sound", role="environment",
                          gain_db=float(rng.uniform(-6.0, 0.0)), clip_start_s=cut0, clip_dur_s=cut1 - cut0)
        segments.append(seg)
        # due a moment after the event's active span ends (its audible end: the turn's evidence)
        trigger = t + (clip["active_end_s"] - cut0) + float(rng.uniform(lo, hi))
        if entry["action"] == "respond":
            turns.append(TurnPlan(trigger_s=trigger, kind="respond", text=pick(rng, entry["replies"]),
                                  emotion=entry.get("emotion", "normal"), evidence=[seg]))
        else:
            turns.append(TurnPlan(trigger_s=trigger, kind="stay_silent", evidence=[seg]))
        # the next event starts after this one and at least two chunks after its reply
        t = max(t + (cut1 - cut0) + float(rng.uniform(1.0, 3.0)), trigger + 0.8)
    return EpisodePlan(segments=segments, turns=turns, language="",
                       system_prompt=pick(rng, ctx.tables["instructions"]["system_prompts"]), min_duration_s=t,
                       text_writer="policy-table:proactive_household")


RECIPE = Recipe(
    subtask="proactive_household", ability="proactive_response", version="3",
    pools={"events": PoolSpec("sound", requires=("labels", "active_span"), description="labelled sound events"),
           "noise": PoolSpec("noise")},
    tables={"policy": PolicyTable("policy/proactive_household.yaml"),
            "instructions": InstructionBank("instructions/proactive_household.yaml"),
            "scenarios": CuratedScenarios("curation/household_settings.yaml", pool="events", policy="policy")},
    plan=plan, description=__doc__,
)
