"""asr_incremental: 1-3 read utterances; after every 400 ms chunk, respond with the
words whose (aligned) end falls in that chunk. Chunks that complete no word stay
silent. Needs word timings: the pool requires them."""
from streamaudio.format import chunk_of
from streamaudio.plan import (EpisodePlan, InstructionBank, PlanContext, PoolSpec, Recipe, SegmentPlan, TurnPlan,
                              background_bed, pick)

from ._speech import main_language


def plan(ctx: PlanContext) -> EpisodePlan:
    rng = ctx.rng
    utterances = ctx.pools["speech"].sample(rng, int(rng.integers(1, 4)), where=lambda r: bool(r["words"]))
    segments = [background_bed(ctx.pools["noise"].choice(rng), float(rng.uniform(-24.0, -12.0)))]
    turns = []
    t = float(rng.uniform(0.4, 1.2))
    for u in utterances:
        seg = SegmentPlan(clip=u, start_s=t, kind="speech", role="user")
        segments.append(seg)
        # group words by the chunk the chunk rule gives their end: one reply per chunk, due
        # (and evidenced) at the end of the last word it covers
        by_chunk: dict[int, list[dict]] = {}
        for w in u["words"]:
            by_chunk.setdefault(chunk_of(t + w["end_s"], ctx.chunk_s), []).append(w)
        for _, words in sorted(by_chunk.items()):
            end = t + words[-1]["end_s"]
            turns.append(TurnPlan(trigger_s=end, kind="respond", text=" ".join(w["text"] for w in words),
                                  evidence=[seg], evidence_s=end))
        t += u["duration_s"] + float(rng.uniform(0.8, 2.4))
    return EpisodePlan(segments=segments, turns=turns, language=main_language(utterances),
                       system_prompt=pick(rng, ctx.tables["instructions"]["system_prompts"]), min_duration_s=t,
                       text_writer="source-transcript", aligner=utterances[0].get("words_by", ""))


RECIPE = Recipe(
    subtask="asr_incremental", ability="real_time_asr", version="3",
    pools={"speech": PoolSpec("speech", requires=("text", "words"), description="utterances with word timings"),
           "noise": PoolSpec(("noise", "music"))},
    tables={"instructions": InstructionBank("instructions/asr_incremental.yaml")},
    plan=plan, description=__doc__,
)
