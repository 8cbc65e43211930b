"""s2tt_instructed: the user first says which language to translate into (a spoken prompt,
intent translate_to, e.g. "Please translate what I say into German."), then speaks 2-4
English sentences (CoVoST 2 en->X rows into that language); the replies are their
translations into the instructed language, clause by clause where the clip has word timings
and an aligned clause split, else per sentence at its end. The target language is drawn
among those that both the prompts and this split's speech have (PlanError when none).

The instruction itself gets a stay_silent turn (evidence: the instruction), due a moment
after it ends: a naive model would answer it ("Sure!") or translate it, while what it asks
for is the translation of what follows, and nothing is to be said until then. The prompt's
voice (an espeak-ng voice; CoVoST speech is by real speakers, so no voice matches the
rest) is recorded in the prompt segment's attrs."""
import numpy as np

from streamaudio.plan import (EpisodePlan, InstructionBank, PlanContext, PlanError, PoolSpec, Recipe, SegmentPlan,
                              TurnPlan, YamlTable, background_bed, pick, speech_end)
from streamaudio.text.clauses import ClauseAlignment, primary

from ._speech import aligners, main_language
from ._translation import is_translated, pool_languages, primary_is, translation_train

INTENT, SLOT = "translate_to", "language="
SILENT_DELAY_S = (0.2, 0.6)  # where a chatty model would answer the instruction


def prompt_targets(prompts) -> dict[str, np.ndarray]:
    """Target language (lower case) -> row indices of the translate_to prompts that ask for it."""
    asking = prompts.with_label(INTENT).indices
    out = {}
    for label in prompts.labels():
        if label.startswith(SLOT):
            rows = np.intersect1d(asking, prompts.with_label(label).indices)
            if len(rows):
                out[label[len(SLOT):].lower()] = rows
    return out


def speech_targets(speech) -> dict[str, str]:
    """Target language (lower case) -> as spelled in the pool, for English speech with a translation."""
    if "translation_language" not in speech.table.column_names:
        return {}
    return {code.lower(): code for code in pool_languages(speech, "translation_language",
                                                          where=lambda t: primary_is(t, "language", "en"))}


def plan(ctx: PlanContext) -> EpisodePlan:
    rng = ctx.rng
    prompts, speech = ctx.pools["prompts"], ctx.pools["speech"]
    asked, heard = prompt_targets(prompts), speech_targets(speech)
    common = sorted(set(asked) & set(heard))
    if not common:
        raise PlanError(f"no target language has both a {INTENT} prompt and English speech translated into it "
                        f"in split {ctx.split!r} (prompts ask for {sorted(asked)}, speech is translated into "
                        f"{sorted(heard)})")
    target = heard[pick(rng, common)]
    rows = asked[target.lower()]
    prompt = prompts.row(int(rows[int(rng.integers(len(rows)))]))
    t0 = float(rng.uniform(0.4, 1.2))
    instruction = SegmentPlan(clip=prompt, start_s=t0, kind="speech", role="user",
                              attrs={"intent": INTENT, "target_language": target, "voice": prompt.get("speaker") or ""})
    done = t0 + speech_end(prompt)
    silent = TurnPlan(trigger_s=done + float(rng.uniform(*SILENT_DELAY_S)), kind="stay_silent",
                      evidence=[instruction], evidence_s=done)
    try:
        utterances = speech.sample(rng, int(rng.integers(2, 5)),
                                   where=lambda r: primary(r.get("language")) == "en" and is_translated(r)
                                   and (r.get("translation_language") or "").lower() == target.lower(),
                                   repeats=False)
    except PlanError:
        raise PlanError(f"no English speech with a translation into {target} in split {ctx.split!r}") from None
    start = t0 + prompt["duration_s"] + float(rng.uniform(0.8, 2.0))
    segments, turns, end = translation_train(ctx, utterances, start, ctx.tables["clauses"], ctx.tables["marks"])
    bed = background_bed(ctx.pools["noise"].choice(rng), float(rng.uniform(-26.0, -14.0)))
    return EpisodePlan(segments=[bed, instruction, *segments], turns=[silent, *turns],
                       language=main_language([prompt, *utterances]),
                       system_prompt=pick(rng, ctx.tables["instructions"]["system_prompts"]), min_duration_s=end,
                       text_writer="source-translation", tts=prompt.get("speaker") or "",
                       aligner=aligners([prompt, *utterances]))


RECIPE = Recipe(
    subtask="s2tt_instructed", ability="speech_translation", version="1",
    pools={"speech": PoolSpec("speech", requires=("translation",),
                              description="English speech with translations into several languages (CoVoST 2 en->X)"),
           "prompts": PoolSpec("speech", requires=("words", "intent"),
                               description="spoken instructions: translate_to with a language=<code> slot"),
           "noise": PoolSpec(("noise", "music"), description="background beds")},
    tables={"instructions": InstructionBank("instructions/s2tt_instructed.yaml"),
            "marks": YamlTable("translation/clauses.yaml"),
            "clauses": ClauseAlignment(pool="speech", source="en")},
    plan=plan, description=__doc__,
)
