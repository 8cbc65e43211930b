"""chat_sound_aware: the user talks over music or right after a sound and asks about it
(spoken prompt, intent sound_question), 1-3 rounds per episode, in one user voice where the
prompt pool has it:

- music (an FMA-like pool: labels = genres, attrs genre_top and tempo): the music starts, the
  user asks while it plays (it plays under the question and on after it where the clip is long
  enough), about=music_genre or, for a track with a known tempo, about=music_tempo;
- a sound event (an AudioSet-like pool with active spans): the event is heard, and the question
  (about=sound_event) starts after its active span has ended.

The answer is due when the question's last word ends and is grounded in the clip: its genre
(manifests/chat/sound_phrases.yaml genres), its tempo band and BPM (tempo_bands), or a phrase
for its AudioSet label (labels); the templates are an AnswerTemplates table
(manifests/chat/sound_aware.yaml). Its evidence is the question and the music or sound segment;
for music, evidence_s is the end of the question (the music heard up to then is what is asked
about, even when it plays on).

Pools: "music" and "events" are both optional (a catalog maps one or both); each round is
music or a sound among those given, and an episode with neither is a PlanError."""
from streamaudio.plan import (EpisodePlan, InstructionBank, PlanContext, PlanError, PoolSpec, Recipe, SegmentPlan,
                              TurnPlan, YamlTable, pick)
from streamaudio.text.templates import AnswerTemplates, fill

from ._dialogue import (background, event_segment, genre_of, genre_phrase, pick_event, pick_prompt, place_at,
                        prompt_topics, reply_gap_s, speakers, tempo_of, tempo_phrase, uniform)
from ._speech import aligners

INTENT = "sound_question"


def music_round(ctx, t: float, about: str, cfg: dict, pacing: dict):
    """(music segment, first word time of the question, answer values) for a music round."""
    rng, phrases = ctx.rng, ctx.tables["phrases"]
    long_enough = cfg["music_min_s"]  # the question must start while the music still plays

    def where(r):
        return bool(r.get("labels")) and r["duration_s"] >= long_enough and (
            about != "music_tempo" or tempo_of(r) is not None)

    try:
        clip = ctx.pools["music"].choice(rng, where=where)
    except PlanError:
        raise PlanError(f"no music clip of {long_enough} s or more with labels"
                        f"{' and a tempo' if about == 'music_tempo' else ''} in the {ctx.split} pool") from None
    dur = clip["duration_s"]
    before = min(uniform(rng, cfg["music_before_s"]), max(0.5, dur - 1.0))  # the question starts while it plays
    bpm = tempo_of(clip)
    seg = SegmentPlan(clip=clip, start_s=t, kind="music", role="environment", gain_db=uniform(rng, cfg["music_gain_db"]),
                      attrs={"asked": about, "genre_top": genre_of(clip),
                             **({"tempo_bpm": round(bpm, 1)} if bpm is not None else {})})
    if about == "music_tempo":
        values = {"tempo": tempo_phrase(bpm, phrases), "bpm": str(round(bpm))}
    else:
        values = {"genre": genre_phrase(genre_of(clip), phrases)}
    return seg, t + before, values


def plan(ctx: PlanContext) -> EpisodePlan:
    rng = ctx.rng
    pacing, phrases, answers = ctx.tables["pacing"], ctx.tables["phrases"], ctx.tables["answers"]
    cfg = pacing["sound_aware"]
    prompts = ctx.pools["prompts"]
    topics = prompt_topics(prompts, INTENT)
    asked = set().union(*topics.values()) if topics else set()
    kinds = [k for k in ("music", "events") if k in ctx.pools and len(ctx.pools[k])
             and asked & ({"music_genre", "music_tempo"} if k == "music" else {"sound_event"})]
    if not kinds:
        raise PlanError("chat_sound_aware needs a music pool or an events pool with clips (map one in the catalog), "
                        f"and spoken {INTENT} prompts about them")
    segments, turns, clips = [background(ctx, pacing)], [], []
    t, end, last_answer = uniform(rng, pacing["lead_s"]), 0.0, None
    voice = language = ""  # the user's, from their first question on
    for _ in range(int(rng.integers(cfg["rounds"][0], cfg["rounds"][1] + 1))):
        kind = pick(rng, kinds)
        if kind == "music":
            about = pick(rng, sorted({"music_genre", "music_tempo"} & asked))
            try:
                heard, word_at, values = music_round(ctx, t, about, cfg, pacing)
            except PlanError:  # no track with a known tempo here: ask about the genre
                if "music_genre" not in asked:
                    raise
                about = "music_genre"
                heard, word_at, values = music_round(ctx, t, about, cfg, pacing)
        else:
            about = "sound_event"
            clip, label, phrase = pick_event(rng, ctx.pools["events"], phrases)
            heard = event_segment(clip, t, uniform(rng, cfg["event_gain_db"]), {"named_label": label, "asked": about})
            word_at = heard.audible_end_s() + uniform(rng, cfg["question_after_s"])  # after its active span
            values = {"sound": phrase}
        prompt, same = pick_prompt(rng, prompts, INTENT, about, speaker=voice, language=language)
        language = language or prompt.get("language", "")
        q_start = place_at(prompt, word_at, t, pacing)
        q = SegmentPlan(clip=prompt, start_s=q_start, kind="speech", role="user", attrs={
            "intent": INTENT, "about": about, "prompt_voice": "first" if not voice else ("user" if same else "other")})
        voice = voice or prompt.get("speaker", "")
        trigger = q_start + prompt["words"][-1]["end_s"]
        if last_answer is not None and trigger < last_answer + 0.8:
            raise PlanError("two answers closer than two chunks")  # cannot happen with the pacing table's gaps
        if kind == "music":  # it plays on a little after the question where the clip is long enough
            heard.clip_dur_s = min(heard.clip["duration_s"], trigger - heard.start_s + uniform(rng, cfg["music_after_s"]))
        text = fill(pick(rng, answers["templates"][about]), **values)
        answer = TurnPlan(trigger_s=trigger, kind="respond", text=text, evidence=[q, heard],
                          evidence_s=trigger if kind == "music" else None)
        segments += [heard, q]
        turns.append(answer)
        clips += [prompt]
        end = max(end, q_start + prompt["duration_s"], heard.start_s + (heard.clip_dur_s or heard.clip["duration_s"]))
        last_answer = trigger
        t = max(trigger + reply_gap_s(text, pacing), end) + uniform(rng, cfg["between_rounds_s"])
    return EpisodePlan(
        segments=segments, turns=turns, language=clips[0].get("language") or "en",
        system_prompt=pick(rng, ctx.tables["instructions"]["system_prompts"]),
        min_duration_s=max(end, last_answer + uniform(rng, pacing["tail_s"])),
        text_writer="answer-templates+" + "+".join(sorted({c["text_by"] for c in clips if c.get("text_by")})),
        tts=speakers(clips), aligner=aligners(clips),
    )


RECIPE = Recipe(
    subtask="chat_sound_aware", ability="voice_chatting", version="1",
    pools={"prompts": PoolSpec("speech", requires=("words", "intent"), description="spoken prompts (sound_question)"),
           "music": PoolSpec("music", requires=("labels",), optional=True,
                             description="music tracks with genre labels (and a tempo in attrs, where known)"),
           "events": PoolSpec("sound", requires=("labels", "active_span"), optional=True,
                              description="labelled sound events"),
           "noise": PoolSpec("noise", description="background beds")},
    tables={"pacing": YamlTable("chat/pacing.yaml"), "phrases": YamlTable("chat/sound_phrases.yaml"),
            "answers": AnswerTemplates("chat/sound_aware.yaml"),
            "instructions": InstructionBank("instructions/chat_sound_aware.yaml")},
    plan=plan, description=__doc__,
)
