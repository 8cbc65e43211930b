"""chat_single_turn: one spoken user question (a chat source's first user message,
rewritten to spoken form and synthesized); respond with the source's reply when the
question's last word ends."""
from streamaudio.plan import (EpisodePlan, InstructionBank, PlanContext, PoolSpec, Recipe, SegmentPlan, TurnPlan,
                              background_bed, pick)


def plan(ctx: PlanContext) -> EpisodePlan:
    rng = ctx.rng
    # a dialogue's first turn: a later one may lean on what came before it, which this stream lacks
    question = ctx.pools["speech"].choice(rng, where=lambda r: bool(r["words"]) and bool(r["response"])
                                          and r.get("turn", -1) <= 0)
    bed = ctx.pools["noise"].choice(rng)
    lead = float(rng.uniform(0.4, 1.6))
    q = SegmentPlan(clip=question, start_s=lead, kind="speech", role="user")
    return EpisodePlan(
        segments=[background_bed(bed, float(rng.uniform(-30.0, -18.0))), q],
        turns=[TurnPlan(trigger_s=lead + question["words"][-1]["end_s"], kind="respond", text=question["response"],
                        evidence=[q])],
        language=question.get("language") or "en", system_prompt=pick(rng, ctx.tables["instructions"]["system_prompts"]),
        min_duration_s=lead + question["duration_s"] + float(rng.uniform(0.8, 2.0)),
        text_writer=f"source-reply+{question['text_by']}", tts=question["speaker"],
        aligner=question.get("words_by", ""),
    )


RECIPE = Recipe(
    subtask="chat_single_turn", ability="voice_chatting", version="3",
    pools={"speech": PoolSpec("speech", requires=("words", "response"), description="spoken questions with replies"),
           "noise": PoolSpec(("noise", "music"))},
    tables={"instructions": InstructionBank("instructions/chat_single_turn.yaml")},
    plan=plan, description=__doc__,
)
