"""s2tt_en_zh: 2-5 English utterances (CoVoST 2 en->zh-CN; fewer when the split has fewer
distinct ones) over a quiet noise bed, translated into Chinese simultaneously: where the
clip has word timings and its sentence and translation cut into aligned clauses (streamaudio.text.clauses.ClauseAlignment: the
clause punctuation rule offline, an LLM's checked alignment with one), the Chinese of each
clause is due when the clause's last word ends; otherwise one reply per sentence, the
whole translation, at its last word's end (or the clip's end when there are no word
timings; segments.attrs say which)."""
from streamaudio.plan import (EpisodePlan, InstructionBank, PlanContext, PlanError, PoolSpec, Recipe, YamlTable,
                              background_bed, pick)
from streamaudio.text.clauses import ClauseAlignment, primary

from ._speech import aligners, main_language
from ._translation import is_translated, translation_train


def en_to_zh(r: dict) -> bool:
    return primary(r.get("language")) == "en" and primary(r.get("translation_language")) == "zh" and is_translated(r)


def plan(ctx: PlanContext) -> EpisodePlan:
    rng = ctx.rng
    try:
        utterances = ctx.pools["speech"].sample(rng, int(rng.integers(2, 6)), where=en_to_zh, repeats=False)
    except PlanError:
        raise PlanError(f"no English speech with a Chinese translation in split {ctx.split!r}") from None
    bed = background_bed(ctx.pools["noise"].choice(rng), float(rng.uniform(-26.0, -14.0)))
    segments, turns, end = translation_train(ctx, utterances, float(rng.uniform(0.4, 1.2)),
                                             ctx.tables["clauses"], ctx.tables["marks"])
    return EpisodePlan(segments=[bed, *segments], turns=turns, language=main_language(utterances),
                       system_prompt=pick(rng, ctx.tables["instructions"]["system_prompts"]), min_duration_s=end,
                       text_writer="source-translation", aligner=aligners(utterances))


RECIPE = Recipe(
    subtask="s2tt_en_zh", ability="speech_translation", version="1",
    pools={"speech": PoolSpec("speech", requires=("translation",),
                              description="English speech with Chinese translations (CoVoST 2 en->zh-CN)"),
           "noise": PoolSpec(("noise", "music"), description="background beds")},
    tables={"instructions": InstructionBank("instructions/s2tt_en_zh.yaml"),
            "marks": YamlTable("translation/clauses.yaml"),
            "clauses": ClauseAlignment(pool="speech", source="en", target="zh")},
    plan=plan, description=__doc__,
)
