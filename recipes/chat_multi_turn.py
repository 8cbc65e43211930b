"""chat_multi_turn: one spoken dialogue of 3-15 user turns (MOSS, GammaCorpus, UltraChat, ...),
all in the dialogue's one user voice (the TTS stage gives each dialogue one voice). Each turn
is answered with the source's reply when its last word ends; the user then waits about as
long as the reply would take to say (its word count at ~2.5 words/s, bounded:
manifests/chat/pacing.yaml) before the next turn, over a background bed that is near silent
in some episodes and audible in others.

Turns: every turn of the dialogue from its first, in order (a dialogue is only taken from its
start, and only up to a turn the source stages rejected: later turns may lean on it), at most
15. A dialogue with at least 3 such turns is drawn when the split has one; only when it has
none is a 2-turn dialogue accepted (small corpora and their validation/test splits, e.g. the
fixtures, have few long dialogues); with no dialogue of 2 or more turns the episode is a
PlanError.

Comprehension-aware silence: in some episodes one turn is cut at a word boundary and its
second part comes after a pause (two segments of the same clip); a stay_silent turn lies in
the pause (evidence: the first part) and the reply comes only after the whole turn."""
from streamaudio.plan import EpisodePlan, InstructionBank, PlanContext, PoolSpec, Recipe, YamlTable, pick

from ._dialogue import background, converse, pick_dialogue, uniform
from ._speech import aligners, main_language


def plan(ctx: PlanContext) -> EpisodePlan:
    rng = ctx.rng
    pacing = ctx.tables["pacing"]
    lo, hi = pacing["multi_turn"]["turns"]
    rows = pick_dialogue(rng, ctx.pools["speech"], want=lo, fewest=2, max_turns=hi)
    bed = background(ctx, pacing)
    conv = converse(ctx, rows, uniform(rng, pacing["lead_s"]), pacing, split=rng.random() < pacing["pause"]["p"])
    last = conv.replies[-1].trigger_s
    return EpisodePlan(
        segments=[bed, *conv.segments], turns=conv.turns, language=main_language(rows),
        system_prompt=pick(rng, ctx.tables["instructions"]["system_prompts"]),
        min_duration_s=max(conv.end_s, last + uniform(rng, pacing["tail_s"])),
        text_writer="source-reply+" + "+".join(sorted({r["text_by"] for r in rows if r.get("text_by")})),
        tts=rows[0].get("speaker", ""), aligner=aligners(rows),
    )


RECIPE = Recipe(
    subtask="chat_multi_turn", ability="voice_chatting", version="1",
    pools={"speech": PoolSpec("speech", requires=("words", "response", "dialogue"),
                              description="spoken dialogue turns with their replies"),
           "noise": PoolSpec(("noise", "music"), description="background beds")},
    tables={"pacing": YamlTable("chat/pacing.yaml"),
            "instructions": InstructionBank("instructions/chat_multi_turn.yaml")},
    plan=plan, description=__doc__,
)
