"""music_description: pieces of music (FMA, MUSAN music) one after another over a quiet bed,
and a description of each: its genre, instruments, tempo (BPM) and mood.

Each round plays an excerpt of a track (the whole track when it is short). Either
- the music ends and the description is due a moment later (evidence: the music segment,
  evidence_s the end of the excerpt), or
- the user asks about it while it plays (a spoken music_question prompt, in one user voice
  through the episode where the prompts pool has it): the description is due when the
  question's last word ends (evidence: the question and the music, evidence_s that word's
  end); the music plays on a little, and when it ends the assistant stays silent (a
  stay_silent turn: it has already described this piece).
In some rounds someone else talks in the room over the music (role other, quieter than the
music): a stay_silent turn after their last word, where a naive model would answer them.

What is said comes from the track's facts (streamaudio/text/music.py): the genre from
FMA's genre_top or MUSAN's genre labels, the tempo from the metadata (FMA's echonest
tempo) or, where it has none, measured from the audio at build time (the ClipTempos table:
librosa's beat tracker), instruments the metadata states (MUSAN's vocals
flag, instrument genres) or the genre's usual ones said as "what sounds like", and a mood
word of the genre that fits the tempo. The templates are manifests/audio/music_description.yaml;
with an LLM, per-track descriptions that keep the genre and the BPM (checked) replace them.
Segment attrs record genre, tempo_bpm, tempo_from, instruments, mood and how the piece was
described. Rounds per episode: the table's `rounds`, or the catalog's options: {rounds: [lo, hi]}.
Pools: music (labels), noise, and optionally prompts (spoken music_question prompts) and
other (speech of other people)."""
from streamaudio.plan import (EpisodePlan, InstructionBank, PlanContext, PlanError, PoolSpec, Recipe, SegmentPlan,
                              TurnPlan, YamlTable, background_bed, pick)
from streamaudio.text.music import ClipTempos, MusicDescriptions, music_facts
from streamaudio.text.templates import fill

from ._speech import aligners, main_language

INTENT = "music_question"
TABLE = "audio/music_description.yaml"
MIN_GAP_S = 0.8  # between two turns: two chunks, so no two decisions share one


def uniform(rng, bounds) -> float:
    return float(rng.uniform(*bounds))


def rounds_range(ctx: PlanContext, cfg: dict) -> tuple[int, int]:
    lo, hi = ctx.options.get("rounds", cfg["rounds"])
    if not 1 <= int(lo) <= int(hi):
        raise ValueError(f"music_description: options.rounds must be [lo, hi] with 1 <= lo <= hi, got {[lo, hi]}")
    return int(lo), int(hi)


def question_rows(ctx: PlanContext) -> list[dict]:
    """The pool's spoken music questions (with word timings); empty without a prompts pool."""
    prompts = ctx.pools.get("prompts")
    if prompts is None or not len(prompts):
        return []
    return [r for r in prompts.with_label(INTENT) if r.get("words")]


def pick_question(rng, rows: list[dict], voice: str) -> tuple[dict, bool]:
    same = [r for r in rows if voice and r.get("speaker") == voice]
    return pick(rng, same or rows), bool(same)


TALKER_TRIES = 16


def pick_talker(rng, pool, room_s: float) -> dict | None:
    """An utterance of someone else that fits in ``room_s`` seconds, or None: a few random
    draws (never a scan of a large speech pool for a short track)."""
    for _ in range(TALKER_TRIES if room_s > 0 else 0):
        r = pool.choice(rng)
        if 0 < r["duration_s"] <= room_s:
            return r
    return None


def reply_text(ctx: PlanContext, clip: dict, facts: dict, key: str) -> str:
    """The track's checked LLM description for ``key`` (playing / ended) where the table has
    one, else a template filled with its facts."""
    llm = ((ctx.tables["descriptions"].get("by_id") or {}).get(clip["id"]) or {}).get(key)
    if llm:
        return llm
    t = pick(ctx.rng, ctx.tables["settings"]["templates"][key])
    text = fill(t, genre=facts["genre"], tempo=facts["tempo"], bpm=facts["bpm"], instruments=facts["instruments"],
                mood=facts["mood"])
    return text[:1].upper() + text[1:]


def plan(ctx: PlanContext) -> EpisodePlan:
    rng, cfg, tempos = ctx.rng, ctx.tables["settings"], ctx.tables["tempos"]
    lo, hi = rounds_range(ctx, cfg)
    music = ctx.pools["music"]

    def usable(r):
        return r["duration_s"] >= cfg["min_clip_s"] and music_facts(r, tempos, cfg) is not None

    try:
        tracks = music.sample(rng, int(rng.integers(lo, hi + 1)), where=usable, repeats=False)
    except PlanError:
        raise PlanError(f"pool {music.name!r} has no music clip of {cfg['min_clip_s']} s or more with a known genre "
                        f"(table genres/aliases) and a tempo (metadata or measured)") from None
    questions = question_rows(ctx)
    others = ctx.pools.get("other")
    max_talk = cfg["talker_max_s"]

    segments = [background_bed(ctx.pools["noise"].choice(rng), uniform(rng, cfg["bed_gain_db"]))]
    turns: list[TurnPlan] = []
    speech: list[dict] = []
    voice = ""
    t = uniform(rng, cfg["lead_s"])
    end = t
    for k, clip in enumerate(tracks):
        facts = music_facts(clip, tempos, cfg, rng)
        dur = float(clip["duration_s"])
        excerpt = min(dur, uniform(rng, cfg["excerpt_s"]))
        # someone else talking over the music: a short utterance that ends well before the music does
        talker = None
        talk_at = uniform(rng, cfg["talker_after_s"])
        if others is not None and len(others) and rng.random() < cfg["talker_p"]:
            talker = pick_talker(rng, others, min(max_talk, dur - talk_at - 1.6))
        # the user's question while it plays
        question = None
        if questions and rng.random() < cfg["ask_p"]:
            question, same_voice = pick_question(rng, questions, voice)
            last_word = question["words"][-1]["end_s"]
            ask_at = uniform(rng, cfg["heard_before_ask_s"])
            if talker is not None:
                ask_at = max(ask_at, talk_at + talker["duration_s"] + 0.4 + uniform(rng, cfg["reply_delay_s"]))
            ask_at = min(ask_at, dur - 0.3 - last_word)  # its last word ends while the music plays
            if ask_at < 1.0 or (talker is not None and ask_at < talk_at + talker["duration_s"] + 0.4):
                question = None
        need = excerpt
        if talker is not None:
            need = max(need, talk_at + talker["duration_s"] + 1.6)
        if question is not None:
            need = max(need, ask_at + question["duration_s"], ask_at + last_word + uniform(rng, cfg["after_answer_s"]))
        length = min(dur, need)
        clip_start = uniform(rng, (0.0, dur - length)) if dur - length > 0.5 else 0.0
        described = "asked" if question is not None else "ended"
        seg = SegmentPlan(clip=clip, start_s=t, kind="music", role="environment", gain_db=uniform(rng, cfg["music_gain_db"]),
                          clip_start_s=clip_start, clip_dur_s=length,
                          attrs={"round": k, "genre": facts["genre_key"], "tempo_bpm": facts["bpm_value"],
                                 "tempo_from": facts["tempo_from"], "instruments": facts["instruments"],
                                 "mood": facts["mood"], "described": described})
        segments.append(seg)
        music_end = t + length
        round_turns: list[TurnPlan] = []
        if talker is not None:
            tseg = SegmentPlan(clip=talker, start_s=t + talk_at, kind="speech", role="other",
                               gain_db=uniform(rng, cfg["talker_gain_db"]), attrs={"talker": True, "round": k})
            segments.append(tseg)
            speech.append(talker)
            # a naive model answers the person who just spoke; they did not speak to the assistant
            round_turns.append(TurnPlan(trigger_s=tseg.audible_end_s() + uniform(rng, cfg["reply_delay_s"]),
                                        kind="stay_silent", evidence=[tseg]))
        if question is not None:
            q = SegmentPlan(clip=question, start_s=t + ask_at, kind="speech", role="user",
                            attrs={"intent": INTENT, "round": k,
                                   "prompt_voice": "first" if not voice else ("user" if same_voice else "other")})
            segments.append(q)
            speech.append(question)
            voice = voice or question.get("speaker", "")
            due = q.start_s + last_word
            round_turns.append(TurnPlan(trigger_s=due, kind="respond", text=reply_text(ctx, clip, facts, "playing"),
                                        evidence=[q, seg], evidence_s=due))
            # the piece ends after it was described: nothing more to say about it
            silent_at = music_end + uniform(rng, cfg["reply_delay_s"])
            if silent_at >= due + MIN_GAP_S:
                round_turns.append(TurnPlan(trigger_s=silent_at, kind="stay_silent", evidence=[seg],
                                            evidence_s=music_end))
        else:
            round_turns.append(TurnPlan(trigger_s=music_end + uniform(rng, cfg["reply_delay_s"]), kind="respond",
                                        text=reply_text(ctx, clip, facts, "ended"), evidence=[seg],
                                        evidence_s=music_end))
        round_turns.sort(key=lambda x: x.trigger_s)
        for a, b in zip(round_turns, round_turns[1:]):
            if b.trigger_s - a.trigger_s < MIN_GAP_S:  # cannot happen with the table's spacings
                raise PlanError("two turns of one round closer than two chunks")
        turns += round_turns
        spoken_ends = [s.start_s + s.clip["duration_s"] for s in segments if s.kind == "speech" and s.attrs.get("round") == k]
        end = max([music_end, *(x.trigger_s for x in round_turns), *spoken_ends])
        t = end + uniform(rng, cfg["between_s"])
    writer = "template-table:music_description"
    if (ctx.tables["descriptions"].get("by_id")):
        writer = "music-descriptions+" + writer
    return EpisodePlan(segments=segments, turns=turns, language=main_language(speech) or ("en" if speech else ""),
                       system_prompt=pick(rng, ctx.tables["instructions"]["system_prompts"]),
                       min_duration_s=end + uniform(rng, cfg["tail_s"]), text_writer=writer,
                       tts=",".join(sorted({c.get("speaker", "") for c in speech if c.get("corpus") == "prompts"})),
                       aligner=aligners(speech))


RECIPE = Recipe(
    subtask="music_description", ability="audio_understanding", version="1",
    pools={"music": PoolSpec("music", requires=("labels",),
                             description="music tracks with genre labels (FMA genre_top, MUSAN genres); a tempo in "
                                         "attrs where the metadata has one, measured otherwise"),
           "prompts": PoolSpec("speech", requires=("words", "intent"), optional=True,
                               description="spoken prompts (music_question); without it every piece is described "
                                           "when it ends"),
           "other": PoolSpec("speech", requires=("text",), optional=True,
                             description="other people talking over the music (stay silent on them)"),
           "noise": PoolSpec("noise", description="background beds")},
    tables={"settings": YamlTable(TABLE),
            "tempos": ClipTempos(TABLE, pool="music"),
            "descriptions": MusicDescriptions(TABLE, pool="music", tempos="tempos"),
            "instructions": InstructionBank("instructions/music_description.yaml")},
    plan=plan, description=__doc__,
)
