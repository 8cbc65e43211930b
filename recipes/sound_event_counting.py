"""sound_event_counting: "tell me each time you hear X, and keep count". The request is either
spoken by the user at the start (a count_when prompt) or the text system prompt. Then sound events
without X (and without the labels that also mean X), other people talking (role other), and X
two to four times, each X right after a distractor (never first, never two in a row). The model
stays silent through the request and every distractor (an explicit stay_silent turn on each, due
when it ends) and, a moment after each X ends (its active span's end), says the running count in
words ("That's once.", "Twice now.", "I've heard the doorbell three times so far."). Only labels
that both the label table (manifests/audio/counting.yaml) and the sound pool have can be
targets; a spoken request also needs a count_when prompt for X in the prompts pool. A hazard (a
smoke alarm, a scream) is never a distractor."""
import re

from streamaudio.plan import EpisodePlan, InstructionBank, PlanContext, PlanError, PoolSpec, Recipe, YamlTable, pick

from ._instr import AnswerTemplates, fill, pick_target, templates, watch_stream
from ._speech import aligners, main_language


def says_a_count(template: str, count_words) -> bool:
    """Whether a template's own words say a count ("once more", "twice"): the reply would then
    say two counts. An LLM paraphrase may; such templates are not used."""
    words = " " + " ".join(re.findall(r"[a-z']+", template.lower())) + " "
    return any(f" {w} " in words for w in count_words)


def reply_text(ctx: PlanContext, rng, count_words: dict, count: int, phrase: str, named: bool) -> str:
    """The running count as a reply: a template of the first/again key, naming the sound or not."""
    key = ("first" if count == 1 else "again") + ("_named" if named else "")
    usable = [t for t in templates(ctx, "texts", key) if not says_a_count(t, count_words.values())]
    if not usable:
        raise PlanError(f"every template of {key!r} says a count of its own")
    return fill(pick(rng, usable), count=count_words[count], label_phrase=phrase)


def plan(ctx: PlanContext) -> EpisodePlan:
    rng, cfg = ctx.rng, ctx.tables["counting"]
    count_words = {int(k): v for k, v in cfg["count_words"].items()}
    n_targets = int(rng.integers(cfg["targets"][0], min(cfg["targets"][1], max(count_words)) + 1))
    target, hits, entry, spoken = pick_target(ctx, cfg, n_targets, "count_when", "audio/counting.yaml")
    phrase = entry["phrase"]

    def reply(k: int) -> str:
        named = bool(rng.random() < cfg["named_probability"])
        return reply_text(ctx, rng, count_words, k, phrase, named)

    segments, turns, end = watch_stream(ctx, cfg, "count_when", target, hits, entry, spoken, reply, record_count=True)
    speech = [s.clip for s in segments if s.kind == "speech"]
    system_prompt = (pick(rng, ctx.tables["instructions"]["system_prompts"]) if spoken else
                     fill(pick(rng, templates(ctx, "texts", "system_prompt")), label_phrase=phrase))
    return EpisodePlan(segments=segments, turns=turns, language=main_language(speech), system_prompt=system_prompt,
                       min_duration_s=end + float(rng.uniform(*cfg["tail_s"])),
                       text_writer="template-table:sound_event_counting",
                       tts=",".join(sorted({c["speaker"] for c in speech if c["corpus"] == "prompts"})),
                       aligner=aligners(speech))


RECIPE = Recipe(
    subtask="sound_event_counting", ability="audio_understanding", version="1",
    pools={"events": PoolSpec("sound", requires=("labels", "active_span"), description="labelled sound events"),
           "prompts": PoolSpec("speech", requires=("words", "intent"), optional=True,
                               description="spoken requests (count_when prompts); without it the request is text"),
           "other": PoolSpec("speech", requires=("text",), optional=True,
                             description="other people talking (distractor speech)"),
           "noise": PoolSpec("noise", description="background beds")},
    tables={"counting": YamlTable("audio/counting.yaml"),
            "texts": AnswerTemplates("audio/counting_texts.yaml"),
            "instructions": InstructionBank("instructions/sound_event_counting.yaml")},
    plan=plan, description=__doc__,
)
