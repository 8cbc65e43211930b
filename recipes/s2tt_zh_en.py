"""s2tt_zh_en: 2-5 Mandarin utterances over a quiet noise bed, translated into English:
CoVoST 2 zh-CN->en clips, and AISHELL clips whose English an LLM wrote at build time
(streamaudio.text.clauses.Translations; offline there is none, so AISHELL clips are not
used). Clause by clause (each clause's English due at its last word's end) where a clip
has word timings and an aligned clause split; otherwise one reply per sentence at its end:
the last word's end, or the clip's end without word timings (segments.attrs say which)."""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streamaudio.plan import (EpisodePlan, InstructionBank, PlanContext, PlanError, PoolSpec, Recipe, YamlTable,
                              background_bed, pick)
from streamaudio.text.clauses import ClauseAlignment, Translations, primary

from ._speech import aligners, main_language
from ._translation import is_translated, translation_train


def zh_to_en(r: dict) -> bool:
    return primary(r.get("language")) == "zh" and primary(r.get("translation_language")) == "en" and is_translated(r)


def llm_translated(ctx: PlanContext) -> np.ndarray:
    """Rows of the optional untranslated Mandarin pool (AISHELL) that got an LLM translation."""
    written = ctx.tables.get("translations") or {}
    pool = ctx.pools.get("mandarin")
    if not written or pool is None or len(pool) == 0:
        return np.zeros(0, np.int64)
    mask = pc.is_in(pool.table["id"], value_set=pa.array(sorted(written), pa.string()))
    return np.flatnonzero(mask.to_numpy(zero_copy_only=False))


def plan(ctx: PlanContext) -> EpisodePlan:
    rng = ctx.rng
    k = int(rng.integers(2, 6))
    written = ctx.tables.get("translations") or {}
    extra = llm_translated(ctx)
    try:
        covost = ctx.pools["speech"].sample(rng, k, where=zh_to_en, repeats=False)
    except PlanError:
        covost = []
    if not covost and not len(extra):
        raise PlanError(f"no Mandarin speech with an English translation in split {ctx.split!r}: no CoVoST 2 "
                        "zh->en clip, and no untranslated Mandarin clip got an LLM translation "
                        "(offline builds write none)")
    # LLM-translated clips stand beside CoVoST's: about half the utterances when both exist
    n_llm = (k if not covost else int(rng.binomial(k, 0.5))) if len(extra) else 0
    picked = rng.choice(extra, n_llm, replace=n_llm > len(extra)) if n_llm else []
    translated = [{**row, "translation": written[row["id"]], "translation_language": "en"}
                  for row in (ctx.pools["mandarin"].row(int(i)) for i in picked)]
    utterances = covost[:k - n_llm] + translated
    utterances = [utterances[int(i)] for i in rng.permutation(len(utterances))]
    bed = background_bed(ctx.pools["noise"].choice(rng), float(rng.uniform(-26.0, -14.0)))
    segments, turns, end = translation_train(ctx, utterances, float(rng.uniform(0.4, 1.2)),
                                             ctx.tables["clauses"], ctx.tables["marks"])
    for seg in segments:
        seg.attrs["translation_by"] = "llm" if seg.clip["id"] in written else "reference"
    return EpisodePlan(segments=[bed, *segments], turns=turns, language=main_language(utterances),
                       system_prompt=pick(rng, ctx.tables["instructions"]["system_prompts"]), min_duration_s=end,
                       text_writer="source-translation" + ("+llm-translation" if translated else ""),
                       aligner=aligners(utterances))


RECIPE = Recipe(
    subtask="s2tt_zh_en", ability="speech_translation", version="1",
    pools={"speech": PoolSpec("speech", requires=("translation",),
                              description="Mandarin speech with English translations (CoVoST 2 zh-CN->en)"),
           "mandarin": PoolSpec("speech", requires=("text",), optional=True,
                                description="Mandarin speech without translations (AISHELL): "
                                            "used only with LLM translations"),
           "noise": PoolSpec(("noise", "music"), description="background beds")},
    tables={"instructions": InstructionBank("instructions/s2tt_zh_en.yaml"),
            "marks": YamlTable("translation/clauses.yaml"),
            "translations": Translations(pool="mandarin", source="zh", target="en"),
            "clauses": ClauseAlignment(pool="speech", source="zh", target="en")},
    plan=plan, description=__doc__,
)
