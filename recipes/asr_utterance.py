"""asr_utterance: 3-8 read utterances separated by noise-filled gaps; after each
utterance, respond with its transcript."""
from streamaudio.plan import EpisodePlan, InstructionBank, PlanContext, PoolSpec, Recipe, background_bed, pick

from ._speech import aligners, main_language, utterance_train


def plan(ctx: PlanContext) -> EpisodePlan:
    rng = ctx.rng
    utterances = ctx.pools["speech"].sample(rng, int(rng.integers(3, 9)))
    bed = background_bed(ctx.pools["noise"].choice(rng), float(rng.uniform(-24.0, -12.0)))
    segments, turns, end = utterance_train(ctx, utterances, float(rng.uniform(0.4, 1.2)))
    return EpisodePlan(segments=[bed, *segments], turns=turns, language=main_language(utterances),
                       system_prompt=pick(rng, ctx.tables["instructions"]["system_prompts"]), min_duration_s=end,
                       text_writer="source-transcript", aligner=aligners(utterances))


RECIPE = Recipe(
    subtask="asr_utterance", ability="real_time_asr", version="3",
    pools={"speech": PoolSpec("speech", requires=("text",), description="read utterances with transcripts"),
           "noise": PoolSpec(("noise", "music"), description="background beds")},
    tables={"instructions": InstructionBank("instructions/asr_utterance.yaml")},
    plan=plan, description=__doc__,
)
