"""asr_incremental: 1-3 read utterances; after every 400 ms chunk, respond with the
words whose (aligned) end falls in that chunk. Chunks that complete no word stay
silent. Needs word timings: clips without them are never drawn."""
from streamaudio.format import chunk_of
from streamaudio.plan import EpisodePlan, PlanContext, Recipe, SegmentPlan, TurnPlan, background_bed


def plan(ctx: PlanContext) -> EpisodePlan:
    rng = ctx.rng
    utterances = ctx.pools["speech"].sample(rng, int(rng.integers(1, 4)), where=lambda r: bool(r["words"]))
    segments = [background_bed(ctx.pools["noise"].choice(rng), float(rng.uniform(-24.0, -12.0)))]
    turns = []
    t = float(rng.uniform(0.4, 1.2))
    for u in utterances:
        segments.append(SegmentPlan(clip=u, start_s=t, kind="speech", role="user"))
        # group words by the chunk the chunk rule gives their end: one reply per chunk
        by_chunk: dict[int, list[dict]] = {}
        for w in u["words"]:
            by_chunk.setdefault(chunk_of(t + w["end_s"], ctx.chunk_s), []).append(w)
        for _, words in sorted(by_chunk.items()):
            turns.append(TurnPlan(trigger_s=t + words[-1]["end_s"], kind="respond",
                                  text=" ".join(w["text"] for w in words)))
        t += u["duration_s"] + float(rng.uniform(0.8, 2.4))
    prompts = ctx.tables["instructions"]["system_prompts"]
    return EpisodePlan(segments=segments, turns=turns, language="en",
                       system_prompt=prompts[int(rng.integers(len(prompts)))], min_duration_s=t,
                       text_writer="source-transcript", aligner=utterances[0].get("words_by", ""))


RECIPE = Recipe(
    subtask="asr_incremental", ability="real_time_asr", version="1",
    pools={"speech": "speech", "noise": "noise"},
    tables={"instructions": "instructions/asr_incremental.yaml"},
    plan=plan, description=__doc__,
)
