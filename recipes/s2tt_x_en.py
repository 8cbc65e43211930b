"""s2tt_x_en: 2-5 utterances in one of CoVoST 2's other source languages (not English or
Mandarin: French, German, Spanish, ... ->English) over a quiet noise bed; when each
sentence ends (its last word's end, or the clip's end without word timings), respond
with its English translation. One source language per episode, drawn among those this
split has."""
from streamaudio.plan import (EpisodePlan, InstructionBank, PlanContext, PlanError, PoolSpec, Recipe, YamlTable,
                              background_bed, pick)
from streamaudio.text.clauses import primary

from ._speech import aligners, main_language
from ._translation import is_translated, pool_languages, primary_is, translation_train

NOT_OTHER = ("en", "zh", "")  # English and Mandarin sources have sub-tasks of their own


def x_to_en(r: dict) -> bool:
    return primary(r.get("language")) not in NOT_OTHER and primary(r.get("translation_language")) == "en" \
        and is_translated(r)


def plan(ctx: PlanContext) -> EpisodePlan:
    rng = ctx.rng
    pool = ctx.pools["speech"]
    into_en = pool_languages(pool, "language", where=lambda t: primary_is(t, "translation_language", "en")) \
        if "translation_language" in pool.table.column_names else []
    sources = sorted({primary(lang) for lang in into_en} - set(NOT_OTHER))
    if not sources:
        raise PlanError(f"no speech into English from a language other than English or Mandarin in split {ctx.split!r}")
    source = pick(rng, sources)
    try:
        utterances = pool.sample(rng, int(rng.integers(2, 6)),
                                 where=lambda r: x_to_en(r) and primary(r["language"]) == source, repeats=False)
    except PlanError:
        raise PlanError(f"no {source} speech with an English translation in split {ctx.split!r}") from None
    bed = background_bed(ctx.pools["noise"].choice(rng), float(rng.uniform(-26.0, -14.0)))
    # sentence level: no clause table, every reply is the whole English at the sentence's end
    segments, turns, end = translation_train(ctx, utterances, float(rng.uniform(0.4, 1.2)), {}, ctx.tables["marks"])
    return EpisodePlan(segments=[bed, *segments], turns=turns, language=main_language(utterances),
                       system_prompt=pick(rng, ctx.tables["instructions"]["system_prompts"]), min_duration_s=end,
                       text_writer="source-translation", aligner=aligners(utterances))


RECIPE = Recipe(
    subtask="s2tt_x_en", ability="speech_translation", version="1",
    pools={"speech": PoolSpec("speech", requires=("translation",),
                              description="speech in CoVoST 2's other source languages with English translations"),
           "noise": PoolSpec(("noise", "music"), description="background beds")},
    tables={"instructions": InstructionBank("instructions/s2tt_x_en.yaml"),
            "marks": YamlTable("translation/clauses.yaml")},
    plan=plan, description=__doc__,
)
