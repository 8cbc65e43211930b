"""proactive_health: human health and distress sounds (coughs, sneezes, a baby crying, gasps,
groans, wheezes, panting) over a quiet background bed, with no user request. Each scene is one
situation from manifests/policy/proactive_health.yaml: a class, its context (stated in the
attrs of every segment of the scene) and how many clips of it play in quick succession, one
segment each: a coughing fit is 3-5 cough clips, a single light cough is one. The sound policy
over the AudioSet ontology (manifests/policy/sound_policy.yaml, streamaudio.text.sound_policy)
decides under the context: a caring reply (urgent when someone cannot breathe) shortly after
the scene's last clip, whose evidence is every segment of the scene; or, for a benign variant
(a single light cough, one sneeze, a gasp at the television), an explicit stay_silent turn
there. A scene of several clips also gets a stay_silent turn after its first clip, where a naive
model would already speak."""
from streamaudio.plan import (EpisodePlan, InstructionBank, PlanContext, PlanError, PoolSpec, Recipe, SegmentPlan,
                              TurnPlan, YamlTable, background_bed, pick)
from streamaudio.text.sound_policy import SoundPolicyTable, decide

PAD_BEFORE_S, PAD_AFTER_S = 0.2, 0.3  # keep a little of the clip around its active span
MAX_EVENT_S = 10.0
DRAW_LIMIT = 64  # rows of a label looked at for usable clips
TRIES = 8  # scenes tried for the one that must lead to a reply


def usable(r: dict) -> bool:
    a0, a1 = r.get("active_start_s"), r.get("active_end_s")
    return a0 is not None and a1 is not None and 0 <= a0 < a1 and a1 - a0 <= MAX_EVENT_S


def draw(ctx: PlanContext, label: str, k: int) -> list[dict]:
    """k clips of ``label`` with an active span, distinct while the split has enough (rows read
    in a seeded order, a few at a time); [] when it has none."""
    rows = ctx.pools["events"].with_label(label)
    found = []
    for i in ctx.rng.permutation(len(rows))[:DRAW_LIMIT]:
        r = rows[int(i)]
        if usable(r):
            found.append(r)
            if len(found) == k:
                return found
    if not found:
        return []
    # a small split: repeat its few clips, never the same one twice in a row while there are two
    out = list(found)
    while len(out) < k:
        out.append(found[(found.index(out[-1]) + 1) % len(found)])
    return out


def plan(ctx: PlanContext) -> EpisodePlan:
    rng, table, policy = ctx.rng, ctx.tables["scenes"], ctx.tables["policy"]
    choose = lambda items: pick(rng, items)  # noqa: E731
    pool = ctx.pools["events"]
    options = [(label, scene) for label, scenes in table["scenes"].items() if pool.label_count(label)
               for scene in scenes]
    if not options:
        raise PlanError(f"the {ctx.split} split of pool 'events' has no clip of a health class "
                        f"({', '.join(table['scenes'])})")
    n_scenes = int(rng.integers(table["scenes_per_episode"][0], table["scenes_per_episode"][1] + 1))
    # (label, clips, context, decision) per scene; the first is one that needs a reply
    scenes = []
    for k in range(n_scenes):
        for _ in range(TRIES):
            label, scene = pick(rng, options)
            n = int(rng.integers(scene["clips"][0], scene["clips"][1] + 1))
            clips = draw(ctx, label, n)
            if not clips:
                continue
            labels = list(dict.fromkeys(lab for c in clips for lab in c["labels"]))
            d = decide(labels, scene["context"], policy, choose)
            if k or d.respond:
                break
        else:
            raise PlanError(f"no scene of policy/proactive_health.yaml led to a reply in {TRIES} tries here")
        scenes.append((label, clips, scene["context"], d))
    scenes = [scenes[int(i)] for i in rng.permutation(len(scenes))]

    segments = [background_bed(ctx.pools["noise"].choice(rng), float(rng.uniform(-34.0, -24.0)))]
    turns = []
    lo, hi = table["delay_s"]
    t = float(rng.uniform(0.8, 2.0))  # where the scene's first active span starts
    for label, clips, context, d in scenes:
        mine, active_end = [], t
        for i, clip in enumerate(clips):
            cut0 = max(0.0, clip["active_start_s"] - PAD_BEFORE_S)
            cut1 = min(clip["duration_s"], clip["active_end_s"] + PAD_AFTER_S)
            start = max(0.0, t - (clip["active_start_s"] - cut0))
            seg = SegmentPlan(clip=clip, start_s=start, kind="sound", role="environment",
                              gain_db=float(rng.uniform(-6.0, 0.0)), clip_start_s=cut0, clip_dur_s=cut1 - cut0,
                              attrs={"context": context, "event": label, "decision": d.decision, "rule": d.rule,
                                     "scene_clip": i + 1, "scene_clips": len(clips)})
            segments.append(seg)
            mine.append(seg)
            active_end = start + (clip["active_end_s"] - cut0)
            if i == 0 and len(clips) > 1:
                # one cough of a fit is not yet a fit: where a naive model would speak, silence
                turns.append(TurnPlan(trigger_s=active_end + float(rng.uniform(0.05, 0.15)), kind="stay_silent",
                                      evidence=[seg]))
            t = active_end + float(rng.uniform(*table["burst_gap_s"]))  # the next clip's active start
        trigger = active_end + float(rng.uniform(lo, hi))
        if d.respond:
            turns.append(TurnPlan(trigger_s=trigger, kind="respond", text=d.reply, emotion=d.emotion, evidence=mine))
        else:
            turns.append(TurnPlan(trigger_s=trigger, kind="stay_silent", evidence=mine))
        # the next scene starts after this one has faded, and at least two chunks after its turn
        tail = max(s.start_s + s.clip_dur_s for s in mine)
        t = max(tail + float(rng.uniform(*table["gap_s"])), trigger + 0.8) + PAD_BEFORE_S
    return EpisodePlan(segments=segments, turns=turns, language="",
                       system_prompt=pick(rng, ctx.tables["instructions"]["system_prompts"]), min_duration_s=t,
                       text_writer=f"sound-policy:{policy.get('writer', 'table')}")


RECIPE = Recipe(
    subtask="proactive_health", ability="proactive_response", version="1",
    pools={"events": PoolSpec("sound", requires=("labels", "active_span"), description="labelled sound events"),
           "noise": PoolSpec("noise", description="background beds")},
    tables={"scenes": YamlTable("policy/proactive_health.yaml"),
            "policy": SoundPolicyTable(classes_from="scenes"),
            "instructions": InstructionBank("instructions/proactive_health.yaml")},
    plan=plan, description=__doc__,
)
