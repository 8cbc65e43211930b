"""chat_history_review: a long spoken conversation (the turns of one or more dialogues, each
answered with its source reply when it ends and followed by a reply-long gap, as in
chat_multi_turn; sometimes a sound event from an AudioSet pool in one of the gaps), then a late
spoken question about something heard much earlier (spoken prompt, intent history_question):

- about=first_request: "what did I ask you first?": the answer quotes the first request;
- about=earlier_sound: "what was that sound earlier?": the answer names the event (a phrase per
  AudioSet label, manifests/chat/sound_phrases.yaml); only with an events pool;
- about=request_count: "how many things have I asked?": the answer gives the number of
  requests before the question (a turn with a mid-turn pause counts once).

The answer is due when the question's last word ends; its evidence is the question and the
earlier segment(s) it needs (the first request's, the event's, or every request's). At least
``min_turns_after`` user turns (manifests/chat/pacing.yaml) lie between what is asked about and
the question. Answers come from AnswerTemplates (manifests/chat/history_review.yaml) filled
with the earlier content. The question is in the first dialogue's user voice when the prompt
pool has a prompt in that voice (segment attrs prompt_voice: "user"), else in another one
("other"); later dialogues are drawn in the same voice when the split has one."""
from streamaudio.plan import (EpisodePlan, InstructionBank, PlanContext, PlanError, PoolSpec, Recipe, SegmentPlan,
                              TurnPlan, YamlTable, pick)
from streamaudio.text.templates import AnswerTemplates, fill

from ._dialogue import (background, converse, pick_dialogue, pick_event, pick_prompt, place_at, prompt_topics,
                        speakers, uniform)
from ._speech import aligners

INTENT = "history_question"


def gather(ctx: PlanContext, target: int, cfg: dict, languages: set[str]) -> list[list[dict]]:
    """Dialogues for the stream: the first (in a language the questions are in) with at least 3
    turns where the split has one; then more in its language, in its voice when there are such,
    until ``target`` user turns."""
    rng, pool = ctx.rng, ctx.pools["speech"]
    first = pick_dialogue(rng, pool, want=3, fewest=1, max_turns=target,
                          where=lambda r: r.get("language", "") in languages)
    dialogues, used = [first], {first[0]["dialogue"]}
    voice, lang = first[0].get("speaker", ""), first[0].get("language", "")
    while sum(map(len, dialogues)) < target and len(dialogues) < cfg["max_dialogues"]:
        left = target - sum(map(len, dialogues))
        more = None
        for same_voice in (True, False):
            try:
                more = pick_dialogue(rng, pool, want=min(left, 3), fewest=1, max_turns=left, where=lambda r, s=same_voice: (
                    r["dialogue"] not in used and r.get("language", "") == lang and (not s or r.get("speaker") == voice)))
                break
            except PlanError:
                continue
        if more is None:
            break  # the split has no other dialogue in this language
        dialogues.append(more)
        used.add(more[0]["dialogue"])
    return dialogues


def plan(ctx: PlanContext) -> EpisodePlan:
    rng = ctx.rng
    pacing, phrases, answers = ctx.tables["pacing"], ctx.tables["phrases"], ctx.tables["answers"]
    cfg = pacing["history_review"]
    prompts = ctx.pools["prompts"]
    topics = prompt_topics(prompts, INTENT)
    if not topics:
        raise PlanError(f"pool {prompts.name!r} has no spoken {INTENT} prompt")
    rows = [r for d in gather(ctx, int(rng.integers(cfg["turns"][0], cfg["turns"][1] + 1)), cfg, set(topics)) for r in d]
    after = cfg["min_turns_after"]
    if len(rows) < after + 1:
        raise PlanError(f"only {len(rows)} user turn(s) in this split's dialogues: a late question needs "
                        f"{after + 1} or more")
    lang, voice = rows[0].get("language", ""), rows[0].get("speaker", "")
    abouts = [a for a in ("first_request", "request_count") if a in topics[lang]]
    event = None
    if "events" in ctx.pools and len(ctx.pools["events"]) and "earlier_sound" in topics[lang]:
        try:
            event = pick_event(rng, ctx.pools["events"], phrases)
            abouts.append("earlier_sound")
        except PlanError:
            event = None  # no event here: ask about something else
    if not abouts:
        raise PlanError(f"pool {prompts.name!r} has no {INTENT} prompt this stream can answer in {lang!r}")
    about = pick(rng, abouts)
    events = {}
    if event and (about == "earlier_sound" or rng.random() < cfg["event_p"]):
        # in an early gap, so that `after` user turns come between the sound and the question
        gap = int(rng.integers(0, len(rows) - after)) if about == "earlier_sound" else int(rng.integers(0, len(rows) - 1))
        events[gap] = (event[0], event[1], uniform(rng, cfg["event_gain_db"]))
    bed = background(ctx, pacing)
    conv = converse(ctx, rows, uniform(rng, pacing["lead_s"]), pacing, split=rng.random() < pacing["pause"]["p"],
                    events=events)

    prompt, same_voice = pick_prompt(rng, prompts, INTENT, about, speaker=voice, language=lang)
    q = SegmentPlan(clip=prompt, start_s=place_at(prompt, conv.next_word_s, conv.end_s, pacing), kind="speech",
                    role="user", attrs={"intent": INTENT, "about": about, "prompt_voice": "user" if same_voice else "other"})
    templates = answers["templates"][about]
    if about == "first_request":
        earlier = conv.spoken[0].segments
        text = fill(pick(rng, templates), request=rows[0]["text"])
    elif about == "earlier_sound":
        earlier = conv.events
        text = fill(pick(rng, templates), sound=event[2])
    else:
        earlier = [s for sp in conv.spoken for s in sp.segments]
        n = len(conv.spoken)
        words = answers.get("number_words") or []
        text = fill(pick(rng, templates), count=words[n] if n < len(words) else str(n))
    trigger = q.start_s + prompt["words"][-1]["end_s"]
    answer = TurnPlan(trigger_s=trigger, kind="respond", text=text, evidence=[q, *earlier])
    clips = rows + [prompt]
    return EpisodePlan(
        segments=[bed, *conv.segments, q], turns=[*conv.turns, answer], language=lang,
        system_prompt=pick(rng, ctx.tables["instructions"]["system_prompts"]),
        min_duration_s=max(q.start_s + prompt["duration_s"], trigger + uniform(rng, pacing["tail_s"])),
        text_writer="source-reply+answer-templates+" + "+".join(sorted({c["text_by"] for c in clips if c.get("text_by")})),
        tts=speakers(clips), aligner=aligners(clips),
    )


RECIPE = Recipe(
    subtask="chat_history_review", ability="voice_chatting", version="1",
    pools={"speech": PoolSpec("speech", requires=("words", "response", "dialogue"),
                              description="spoken dialogue turns with their replies"),
           "prompts": PoolSpec("speech", requires=("words", "intent"), description="spoken prompts (history_question)"),
           "events": PoolSpec("sound", requires=("labels", "active_span"), optional=True,
                              description="sound events heard between turns"),
           "noise": PoolSpec(("noise", "music"), description="background beds")},
    tables={"pacing": YamlTable("chat/pacing.yaml"), "phrases": YamlTable("chat/sound_phrases.yaml"),
            "answers": AnswerTemplates("chat/history_review.yaml"),
            "instructions": InstructionBank("instructions/chat_history_review.yaml")},
    plan=plan, description=__doc__,
)
