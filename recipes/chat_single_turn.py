"""chat_single_turn: one spoken user question (a chat source's first user message,
rewritten to spoken form and synthesized); respond with the source's reply when the
question's last word ends."""
from streamaudio.plan import EpisodePlan, PlanContext, PlanError, Recipe, SegmentPlan, TurnPlan, background_bed


def plan(ctx: PlanContext) -> EpisodePlan:
    rng = ctx.rng
    question = ctx.pools["speech"].choice(rng, where=lambda r: bool(r["words"]) and bool(r["response"]))
    bed = ctx.pools["noise"].choice(rng)
    lead = float(rng.uniform(0.4, 1.6))
    if not question["words"]:
        raise PlanError(f"{question['id']}: spoken question has no word timings")
    trigger = lead + question["words"][-1]["end_s"]
    prompts = ctx.tables["instructions"]["system_prompts"]
    return EpisodePlan(
        segments=[
            background_bed(bed, float(rng.uniform(-30.0, -18.0))),
            SegmentPlan(clip=question, start_s=lead, kind="speech", role="user"),
        ],
        turns=[TurnPlan(trigger_s=trigger, kind="respond", text=question["response"])],
        language="en", system_prompt=prompts[int(rng.integers(len(prompts)))],
        min_duration_s=lead + question["duration_s"] + float(rng.uniform(0.8, 2.0)),
        text_writer=f"source-reply+{question['text_by']}", tts=question["speaker"],
        aligner=question.get("words_by", ""),
    )


RECIPE = Recipe(
    subtask="chat_single_turn", ability="voice_chatting", version="1",
    pools={"speech": "speech", "noise": "noise"},
    tables={"instructions": "instructions/chat_single_turn.yaml"},
    plan=plan, description=__doc__,
)
