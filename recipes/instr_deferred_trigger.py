"""instr_deferred_trigger: "tell me when you hear X". The request is either spoken by the user
at the start (a notify_when prompt) or the text system prompt. Then distractors: sound
events without X (and without the labels that also mean X) and other people talking (role
other); then X, once or twice, interleaved with more distractors. The model stays silent
through the request and every distractor (an explicit stay_silent turn on each, due when it
ends) and responds a moment after each X ends (its active span's end) with "I just heard
<X>". Only labels that both the label table (manifests/instr/deferred_trigger.yaml) and the
sound pool have can be targets; a spoken request also needs a prompt for X in the prompts pool."""
from streamaudio.plan import EpisodePlan, InstructionBank, PlanContext, PoolSpec, Recipe, YamlTable, pick

from ._instr import AnswerTemplates, fill, pick_target, templates, watch_stream
from ._speech import aligners, main_language


def plan(ctx: PlanContext) -> EpisodePlan:
    rng, cfg = ctx.rng, ctx.tables["trigger"]
    n_targets = int(rng.integers(cfg["targets"][0], cfg["targets"][1] + 1))
    target, hits, entry, spoken = pick_target(ctx, cfg, n_targets, "notify_when", "instr/deferred_trigger.yaml")
    phrase = entry["phrase"]

    def reply(k: int) -> str:
        return fill(pick(rng, templates(ctx, "texts", "heard" if k == 1 else "heard_again")), label_phrase=phrase)

    segments, turns, end = watch_stream(ctx, cfg, "notify_when", target, hits, entry, spoken, reply)
    speech = [s.clip for s in segments if s.kind == "speech"]
    system_prompt = (pick(rng, ctx.tables["instructions"]["system_prompts"]) if spoken else
                     fill(pick(rng, templates(ctx, "texts", "system_prompt")), label_phrase=phrase))
    return EpisodePlan(segments=segments, turns=turns, language=main_language(speech), system_prompt=system_prompt,
                       min_duration_s=end + float(rng.uniform(*cfg["tail_s"])),
                       text_writer="template-table:instr_deferred_trigger",
                       tts=",".join(sorted({c["speaker"] for c in speech if c["corpus"] == "prompts"})),
                       aligner=aligners(speech))


RECIPE = Recipe(
    subtask="instr_deferred_trigger", ability="instruction_following", version="1",
    pools={"events": PoolSpec("sound", requires=("labels", "active_span"), description="labelled sound events"),
           "prompts": PoolSpec("speech", requires=("words", "intent"), optional=True,
                               description="spoken requests (notify_when prompts); without it the request is text"),
           "other": PoolSpec("speech", requires=("text",), optional=True,
                             description="other people talking (distractor speech)"),
           "noise": PoolSpec("noise", description="background beds")},
    tables={"trigger": YamlTable("instr/deferred_trigger.yaml"),
            "texts": AnswerTemplates("instr/deferred_trigger_texts.yaml"),
            "instructions": InstructionBank("instructions/instr_deferred_trigger.yaml")},
    plan=plan, description=__doc__,
)
