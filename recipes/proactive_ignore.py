"""proactive_ignore: comprehension-aware silence. 3-7 benign everyday sound events (music,
whistling, running water, a dog barking, footsteps, typing, applause...) over a quiet
background bed, with no user request anywhere: the assistant must stay silent throughout.
Every event gets an explicit stay_silent turn shortly after its active span ends (where a
naive model would comment on what it heard), and no turn responds. Which labels are benign,
and which never are (alarms, glass, screams, crying, sirens, doorbell, knock, telephone),
is data: manifests/policy/proactive_ignore.yaml. A clip carrying any never-benign label is
never drawn, whatever else it carries."""
import numpy as np

from streamaudio.plan import (EpisodePlan, InstructionBank, PlanContext, PlanError, PoolSpec, Recipe, SegmentPlan,
                              TurnPlan, YamlTable, background_bed, pick)

PAD_BEFORE_S, PAD_AFTER_S = 0.2, 0.3  # keep a little of the clip around its active span
EVENTS = (3, 7)                       # events per episode, inclusive
# fewer distinct benign clips than this in a split: a PlanError, since the episode would be one
# clip over and over; a catalog may lower it (options: {min_benign_clips: 1}) for a tiny split
MIN_BENIGN_CLIPS = 2


def benign_indices(pool, policy: dict) -> np.ndarray:
    """Row numbers of the clips carrying a benign label and no never-benign one, from the
    pool's label index (no row is read)."""
    def rows_with(labels):
        parts = [pool.with_label(lab).indices for lab in labels]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
    return np.setdiff1d(rows_with(policy["benign"]), rows_with(policy["never_benign"]))


def draw_events(ctx: PlanContext, policy: dict) -> list[dict]:
    """3-7 benign clips with a measured active span, distinct while the split has enough."""
    rng, pool = ctx.rng, ctx.pools["events"]
    candidates = benign_indices(pool, policy)
    k = int(rng.integers(EVENTS[0], EVENTS[1] + 1))
    found: list[dict] = []
    for i in rng.permutation(candidates):  # random order: reads about k rows, not the whole split
        row = pool.row(int(i))
        a0, a1 = row.get("active_start_s"), row.get("active_end_s")
        if a0 is not None and a1 is not None and 0 <= a0 < a1:  # -1: no measured span
            found.append(row)
            if len(found) == k:
                return found
    need = max(1, int(ctx.options.get("min_benign_clips", MIN_BENIGN_CLIPS)))
    if len(found) < need:
        raise PlanError(f"the {ctx.split} split of pool 'events' has {len(found)} benign clip(s) with an active span "
                        f"(labels in policy/proactive_ignore.yaml 'benign', none in 'never_benign'); "
                        f"need at least {need}")
    # a small split: repeat its few clips, never twice in a row while there are two
    events = list(found)
    while len(events) < k:
        step = 1 + int(rng.integers(len(found) - 1)) if len(found) > 1 else 0
        events.append(found[(found.index(events[-1]) + step) % len(found)])
    return events


def plan(ctx: PlanContext) -> EpisodePlan:
    rng = ctx.rng
    policy = ctx.tables["policy"]
    events = draw_events(ctx, policy)
    benign = set(policy["benign"])
    segments = [background_bed(ctx.pools["noise"].choice(rng), float(rng.uniform(-34.0, -24.0)))]
    turns = []
    lo, hi = policy["delay_s"]
    t = float(rng.uniform(0.8, 2.0))
    for clip in events:
        cut0 = max(0.0, clip["active_start_s"] - PAD_BEFORE_S)
        cut1 = min(clip["duration_s"], clip["active_end_s"] + PAD_AFTER_S)
        heard_as = sorted(benign & set(clip["labels"]))
        seg = SegmentPlan(clip=clip, start_s=t, kind="music" if "Music" in heard_as else "sound", role="environment",
                          gain_db=float(rng.uniform(-8.0, 0.0)), clip_start_s=cut0, clip_dur_s=cut1 - cut0,
                          attrs={"benign_labels": heard_as})
        segments.append(seg)
        # where a naive model would remark on the sound: just after its active span ends
        trigger = t + (clip["active_end_s"] - cut0) + float(rng.uniform(lo, hi))
        turns.append(TurnPlan(trigger_s=trigger, kind="stay_silent", evidence=[seg]))
        # the next event starts after this one has faded and after its silence is due
        t = max(t + (cut1 - cut0) + float(rng.uniform(1.0, 3.0)), trigger + 0.4)
    return EpisodePlan(segments=segments, turns=turns, language="",
                       system_prompt=pick(rng, ctx.tables["instructions"]["system_prompts"]), min_duration_s=t)


RECIPE = Recipe(
    subtask="proactive_ignore", ability="proactive_response", version="1",
    pools={"events": PoolSpec("sound", requires=("labels", "active_span"), description="labelled sound events"),
           "noise": PoolSpec("noise")},
    tables={"policy": YamlTable("policy/proactive_ignore.yaml"),
            "instructions": InstructionBank("instructions/proactive_ignore.yaml")},
    plan=plan, description=__doc__,
)
