"""asr_multilingual: 3-6 utterances in several languages in one episode (Common Voice,
VoxPopuli, AISHELL, GigaSpeech ...: two or three languages when the pool has two or more),
over a quiet noise bed; when each utterance ends (its last word's end, or the clip's end
without word timings), respond with its transcript in its own language. Every segment keeps
its clip's language; the episode's language is the most common one."""
from streamaudio.plan import (EpisodePlan, InstructionBank, PlanContext, PlanError, PoolSpec, Recipe, background_bed,
                              pick)
from streamaudio.text.clauses import primary

from ._speech import aligners, main_language, utterance_train
from ._translation import pool_languages


def plan(ctx: PlanContext) -> EpisodePlan:
    rng = ctx.rng
    pool = ctx.pools["speech"]
    languages = sorted({primary(lang) for lang in pool_languages(pool)})
    if not languages:
        raise PlanError(f"pool {pool.name!r} has no utterance with a language")
    n_lang = min(len(languages), int(rng.integers(2, 4)))
    chosen = [languages[int(i)] for i in rng.choice(len(languages), n_lang, replace=False)]
    n = int(rng.integers(max(3, n_lang), 7))
    # every chosen language at least once, the rest drawn among them, in a random order
    slots = chosen + [chosen[int(i)] for i in rng.integers(len(chosen), size=n - n_lang)]
    slots = [slots[int(i)] for i in rng.permutation(len(slots))]
    drawn = {lang: pool.sample(rng, slots.count(lang), where=lambda r, lang=lang: primary(r.get("language")) == lang
                               and bool((r.get("text") or "").strip())) for lang in chosen}
    utterances = [drawn[lang].pop() for lang in slots]
    bed = background_bed(ctx.pools["noise"].choice(rng), float(rng.uniform(-26.0, -14.0)))
    segments, turns, end = utterance_train(ctx, utterances, float(rng.uniform(0.4, 1.2)))
    return EpisodePlan(segments=[bed, *segments], turns=turns, language=main_language(utterances),
                       system_prompt=pick(rng, ctx.tables["instructions"]["system_prompts"]), min_duration_s=end,
                       text_writer="source-transcript", aligner=aligners(utterances))


RECIPE = Recipe(
    subtask="asr_multilingual", ability="real_time_asr", version="1",
    pools={"speech": PoolSpec("speech", requires=("text",),
                              description="transcribed utterances in several languages"),
           "noise": PoolSpec(("noise", "music"), description="background beds")},
    tables={"instructions": InstructionBank("instructions/asr_multilingual.yaml")},
    plan=plan, description=__doc__,
)
