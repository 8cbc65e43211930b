"""asr_utterance: 3-8 read utterances separated by noise-filled gaps; after each
utterance, respond with its transcript."""
from streamaudio.plan import EpisodePlan, PlanContext, Recipe, SegmentPlan, TurnPlan, background_bed


def speech_end(clip: dict) -> float:
    """When the speech itself ends: the last word's end where timings exist,
    otherwise the end of the file (which may include trailing silence)."""
    words = clip.get("words") or []
    return words[-1]["end_s"] if words else clip["duration_s"]


def plan(ctx: PlanContext) -> EpisodePlan:
    rng = ctx.rng
    utterances = ctx.pools["speech"].sample(rng, int(rng.integers(3, 9)))
    segments = [background_bed(ctx.pools["noise"].choice(rng), float(rng.uniform(-24.0, -12.0)))]
    turns = []
    t = float(rng.uniform(0.4, 1.2))
    for u in utterances:
        segments.append(SegmentPlan(clip=u, start_s=t, kind="speech", role="user"))
        turns.append(TurnPlan(trigger_s=t + speech_end(u), kind="respond", text=u["text"]))
        # the released script pads turns with 0.8-2.4 s of noise; >= 2 chunks keeps replies apart
        t += u["duration_s"] + float(rng.uniform(0.8, 2.4))
    prompts = ctx.tables["instructions"]["system_prompts"]
    aligners = sorted({u.get("words_by", "") for u in utterances if u.get("words")})
    return EpisodePlan(segments=segments, turns=turns, language="en",
                       system_prompt=prompts[int(rng.integers(len(prompts)))], min_duration_s=t,
                       text_writer="source-transcript", aligner=",".join(aligners))


RECIPE = Recipe(
    subtask="asr_utterance", ability="real_time_asr", version="1",
    pools={"speech": "speech", "noise": "noise"},
    tables={"instructions": "instructions/asr_utterance.yaml"},
    plan=plan, description=__doc__,
)
