"""instr_task_switch: a spoken instruction sets what to do with each utterance that follows
(transcribe it, count its words, summarise it, or translate it into a language); 2-3
utterances later another instruction switches the task (1-2 switches per episode). Each
utterance is answered when its last word ends, by the task in force when it was heard:
transcribe -> its transcript; count_words -> "<n> words."; summarise -> a short summary
(streamaudio.text.summaries: checked LLM summaries of the pool's utterances, else a rule);
translate_to -> its translation (CoVoST 2 rows with a translation into that language, from
the optional `translatable` pool). Each instruction gets a short acknowledgement when it ends
("Okay, I'll count the words."): the switch itself is supervised, and the model learns that
an instruction is answered by taking it on, not by doing the old task to it.
Tables: manifests/instr/task_switch.yaml, task_switch_texts.yaml, summary_rules.yaml."""
from streamaudio.plan import (EpisodePlan, InstructionBank, PlanContext, PlanError, PoolSpec, Recipe, SegmentPlan,
                              TurnPlan, YamlTable, background_bed, pick)
from streamaudio.text.summaries import UtteranceSummaries, summary_of, words_of

from ._instr import AnswerTemplates, clip_end, fill, prompt_values, spoken_prompt, templates
from ._speech import aligners


def reply(ctx: PlanContext, task: str, clip: dict) -> str:
    """What the task in force makes of an utterance."""
    if task == "transcribe":
        return clip["text"]
    if task == "count_words":
        return fill(pick(ctx.rng, templates(ctx, "texts", "count_words")), count=len(words_of(clip["text"])))
    if task == "summarise":
        return fill(pick(ctx.rng, templates(ctx, "texts", "summarise")),
                    summary=summary_of(clip["text"], ctx.tables["summaries"]))
    if task == "translate_to":
        return clip["translation"]
    raise ValueError(f"unknown task {task!r}")


def plan(ctx: PlanContext) -> EpisodePlan:
    rng, cfg = ctx.rng, ctx.tables["tasks"]
    prompts, speech = ctx.pools["prompts"], ctx.pools["utterances"]
    translatable = ctx.pools.get("translatable")
    langs = tuple(cfg["utterance_languages"])
    spoken_in = lambda r: (r.get("language") or "").split("-")[0] in langs  # noqa: E731

    def fits(task: str):
        """Utterances a task applies to: in the user's language, long enough, and for
        translate_to, translated into the target language."""
        min_words = int(cfg["tasks"][task]["min_words"])
        return lambda r: (spoken_in(r) and len(words_of(r["text"])) >= min_words and (
            task != "translate_to" or (r["translation_language"] == target and bool(r["translation"]))))

    def available(pool, where) -> bool:
        try:
            pool.choice(rng, where=where)
            return True
        except PlanError:
            return False

    # the tasks this episode can use: a prompt that sets each, and utterances it applies to
    offered = set(prompt_values(prompts, "set_task", "task"))
    target = None
    tasks = [t for t in cfg["tasks"] if t in offered and available(speech, fits(t))]
    if translatable is not None:
        can_say = set(prompt_values(prompts, "translate_to", "language"))
        try:  # a language drawn from the data: the pool holds utterances translated into it
            target = translatable.choice(rng, where=lambda r: spoken_in(r) and r["translation_language"] in can_say
                                         and bool(r["translation"]))["translation_language"]
            tasks.append("translate_to")
        except PlanError:
            pass
    if len(tasks) < 2:
        raise PlanError(f"fewer than two tasks can be set in the {ctx.split} pools (prompts for {sorted(offered)}, "
                        f"utterances for {tasks})")

    n_tasks = 1 + int(rng.integers(cfg["switches"][0], cfg["switches"][1] + 1))
    sequence = [pick(rng, tasks)]
    while len(sequence) < n_tasks:
        sequence.append(pick(rng, [t for t in tasks if t != sequence[-1]]))

    segments = [background_bed(ctx.pools["noise"].choice(rng), float(rng.uniform(*cfg["bed_gain_db"])))]
    turns: list[TurnPlan] = []
    used: set = set()
    voice = None
    t = float(rng.uniform(*cfg["lead_s"]))
    end = t
    names = cfg["language_names"]

    def place(seg: SegmentPlan, text: str) -> None:
        nonlocal t, end
        segments.append(seg)
        trig = seg.audible_end_s()  # the last word's end (the file's end for clips without timings)
        turns.append(TurnPlan(trigger_s=trig, kind="respond", text=text, evidence=[seg]))
        end = max(clip_end(seg), trig)
        t = max(clip_end(seg) + float(rng.uniform(*cfg["gap_s"])), trig + 0.8)

    for task in sequence:
        spec = cfg["tasks"][task]
        label = f"language={target}" if task == "translate_to" else spec["label"]
        clip, matched = spoken_prompt(prompts, rng, spec["intent"], label, voice)
        matched = matched or voice is None  # the first instruction sets the episode's user voice
        voice = voice or clip["speaker"]
        attrs = {"sets_task": task, "user_voice_match": matched,
                 **({"target_language": target} if task == "translate_to" else {})}
        phrase = spec["task_phrase"].format(language=names.get(target, target))
        place(SegmentPlan(clip=clip, start_s=t, kind="speech", role="user", attrs=attrs),
              fill(pick(rng, templates(ctx, "texts", "ack")), task_phrase=phrase))
        pool, applies = (translatable if task == "translate_to" else speech), fits(task)
        for _ in range(int(rng.integers(cfg["utterances_per_task"][0], cfg["utterances_per_task"][1] + 1))):
            try:
                u = pool.choice(rng, where=lambda r, applies=applies: applies(r) and (r["path"], r["offset_s"]) not in used)
            except PlanError:  # a small split: an utterance heard before, now under another task
                u = pool.choice(rng, where=applies)
            used.add((u["path"], u["offset_s"]))
            attrs = {"task": task, **({"target_language": target} if task == "translate_to" else {})}
            place(SegmentPlan(clip=u, start_s=t, kind="speech", role="user", attrs=attrs), reply(ctx, task, u))
    return EpisodePlan(segments=segments, turns=turns, language=langs[0],
                       system_prompt=pick(rng, ctx.tables["instructions"]["system_prompts"]),
                       min_duration_s=end + float(rng.uniform(*cfg["tail_s"])),
                       text_writer="+".join(["template-table:instr_task_switch",
                                             *(["source-transcript"] if "transcribe" in sequence else []),
                                             *(["source-translation"] if "translate_to" in sequence else [])]),
                       tts=voice or "", aligner=aligners([s.clip for s in segments if s.kind == "speech"]))


RECIPE = Recipe(
    subtask="instr_task_switch", ability="instruction_following", version="1",
    pools={"prompts": PoolSpec("speech", requires=("words", "intent"),
                               description="spoken instructions (set_task, translate_to)"),
           "utterances": PoolSpec("speech", requires=("text",), description="utterances to transcribe, count, summarise"),
           "translatable": PoolSpec("speech", requires=("text", "translation"), optional=True,
                                    description="utterances with a translation (CoVoST 2): enables translate_to"),
           "noise": PoolSpec("noise", description="background beds")},
    tables={"tasks": YamlTable("instr/task_switch.yaml"),
            "texts": AnswerTemplates("instr/task_switch_texts.yaml"),
            "summaries": UtteranceSummaries("instr/summary_rules.yaml", pool="utterances"),
            "instructions": InstructionBank("instructions/instr_task_switch.yaml")},
    plan=plan, description=__doc__,
)
