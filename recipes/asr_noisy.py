"""asr_noisy: 2-5 read utterances under a continuous noise bed at a signal-to-noise
ratio drawn from 0-20 dB per episode; after each utterance, respond with its
transcript. With a `rir` pool (room impulse responses, e.g. DNS Challenge), half the
episodes are spoken in a room: every utterance convolved with one of its responses. The bed is set about that far below the speech, and each utterance
asks the renderer for the exact SNR over the noise under it (real noise is not
steady: a bed's level where one utterance falls differs from its average); the
renderer measures the SNR reached on the mix and records it per segment
(segments.snr_db) beside the target (segments.attrs.target_snr_db)."""
from streamaudio.plan import EpisodePlan, InstructionBank, PlanContext, PoolSpec, Recipe, background_bed, pick

from ._speech import aligners, main_language, utterance_train

SNR_DB = (0.0, 20.0)


def plan(ctx: PlanContext) -> EpisodePlan:
    rng = ctx.rng
    snr = round(float(rng.uniform(*SNR_DB)), 2)
    utterances = ctx.pools["speech"].sample(rng, int(rng.integers(2, 6)))
    bed = background_bed(ctx.pools["noise"].choice(rng), gain_db=-snr)
    segments, turns, end = utterance_train(ctx, utterances, float(rng.uniform(0.4, 1.2)))
    room = ctx.pools["rir"].choice(rng) if "rir" in ctx.pools and rng.random() < 0.5 else None
    for seg in segments:
        seg.snr_db = snr
        seg.attrs = {"target_snr_db": snr}
        seg.rir = room
    return EpisodePlan(segments=[bed, *segments], turns=turns, language=main_language(utterances),
                       system_prompt=pick(rng, ctx.tables["instructions"]["system_prompts"]), min_duration_s=end,
                       text_writer="source-transcript", aligner=aligners(utterances))


RECIPE = Recipe(
    subtask="asr_noisy", ability="real_time_asr", version="2",
    pools={"speech": PoolSpec("speech", requires=("text",), description="read utterances with transcripts"),
           "noise": PoolSpec(("noise", "music", "speech"), description="continuous noise (MUSAN, WHAM!, DNS), music or babble"),
           "rir": PoolSpec("rir", optional=True, description="room impulse responses (DNS Challenge SLR26/28)")},
    tables={"instructions": InstructionBank("instructions/asr_noisy.yaml")},
    plan=plan, description=__doc__,
)
