"""agent_addressee: the user and one or two other people (role other) talk in turns; only speech
addressed to the assistant gets a reply.

How "addressed to the assistant" is audible: a request to the assistant starts with its wake
phrase, said by the user in the same voice ("Assistant, how long should I boil an egg?", or
"Hey assistant." right before a spoken request from the chat corpora); speech without it is
not for the assistant. The cue is the wake phrase and nothing else:

- the user's side talk (to another person) is in the same voice and from the same sources as
  their requests: the very same request prompts without the wake phrase, some with a person's
  name ("Sam, how long should I boil an egg?": being addressed by name is not the cue), or
  spoken chat requests; a request asked of a person is sometimes asked of the assistant later
  in the episode;
- the other people are recorded voices (LibriSpeech / Common Voice speakers of the `other`
  pool) or synthetic voices like the user's (another voice slot of the spoken prompts, or of
  the chat corpora), and what they say includes questions (spoken chat requests) and a
  mention of the assistant that addresses nobody ("Maybe ask the assistant.");
- the user's voice is fixed per episode and every other speaker's voice (speaker id) differs
  from it.

An episode is 3-6 exchanges, at least one of each of the first two kinds:
addressed (a request to the assistant: a reply is due after its last word, with the chat
reply or the reply template of the request, manifests/scene/addressee.yaml; a pause of the
user after the wake phrase gets a stay_silent turn), side (the user talks to another person,
who answers in one or two turns) and others (the other people talk). Every side-talk and
other-speaker segment gets a stay_silent turn shortly after its last word, with that segment
as evidence: that is where a naive model would answer. Speech segments' attrs say the speaker,
whether the segment is addressed to the assistant and where its text came from.

Reply templates are a RequestReplies table: with an LLM, paraphrases are added only when they
are whole sentences that keep every word of the key's facts; offline, the reviewed ones."""
from __future__ import annotations

import re

from streamaudio.plan import (EpisodePlan, InstructionBank, PlanContext, PlanError, PoolSpec, Recipe, SegmentPlan,
                              TurnPlan, background_bed, pick)
from streamaudio.text.templates import AnswerTemplates

from ._dialogue import first_word_s, speakers, spoken_words, uniform
from ._speech import aligners

ADDRESS, WAKE, SIDE_TALK, SIDE_REPLY = "address", "address_wake", "side_talk", "side_reply"


# ---------------------------------------------------------------- the reply table
def keeps_facts(text: str, facts: list[str]) -> bool:
    """Whether a reply says every fact word (whole words, case-insensitive)."""
    low = " ".join(text.lower().split())
    return all(re.search(r"(?<!\w)" + re.escape(" ".join(f.lower().split())) + r"(?!\w)", low) for f in facts)


def reply_problem(text: str, facts: list[str]) -> str:
    """Why a paraphrased reply cannot be said ("" if it can): a spoken reply is whole sentences
    (it ends with . ! or ?) and says every fact of its request."""
    if not re.search(r"[.!?][\"')]?$", text.strip()):
        return "not a whole sentence"
    if not keeps_facts(text, facts):
        return "leaves out a fact"
    return ""


class RequestReplies(AnswerTemplates):
    """An AnswerTemplates table (``templates: {request: [reply, ...]}``) with ``facts: {request:
    [word, ...]}``: an LLM paraphrase is kept only when it is whole sentences and says every fact
    word of its key, so a paraphrase never changes what the reply says (the timer still runs ten
    minutes). The reviewed templates always stay; a key whose paraphrases all fail keeps them
    alone, counted in the report and the note."""

    def __repr__(self) -> str:
        return f"RequestReplies({self.path!r}, n={self.n})"

    def resolve(self, env):
        res = super().resolve(env)
        if env.llm is None:
            return res
        offline, _ = self.load(env)
        facts = res.value.get("facts") or {}
        dropped: dict[str, int] = {}
        for key, items in res.value["templates"].items():
            n0 = len(offline["templates"][key])
            kept = items[:n0] + [t for t in items[n0:] if not reply_problem(t, facts.get(key) or [])]
            if len(kept) < len(items):
                dropped[key] = len(items) - len(kept)
            res.value["templates"][key] = kept
        if dropped:
            added = {k: len(v) - len(offline["templates"][k]) for k, v in res.value["templates"].items()
                     if len(v) > len(offline["templates"][k])}
            res.report.update(llm_keys=sorted(added), templates_added=sum(added.values()),
                              templates_dropped=dropped)
            emptied = sorted(k for k in dropped if k not in added)
            for k in emptied:
                res.report.setdefault("offline_keys", {})[k] = "no paraphrase was whole sentences with every fact"
            res.note += (f"; then {sum(dropped.values())} paraphrase(s) dropped (not whole sentences, or a fact "
                         f"left out): {sum(added.values())} kept for {len(added)} key(s)")
            if not added:
                res.writer = "table"
        return res


# ---------------------------------------------------------------- the voices in the room
def prompt_rows(pool, intent: str) -> list[dict]:
    """The spoken prompts of an intent that have word timings."""
    return [r for r in pool.with_label(intent) if (r.get("labels") or [""])[0] == intent and r.get("words")]


def value_of(row: dict) -> str:
    return row["labels"][1].split("=", 1)[1] if len(row.get("labels") or []) > 1 else ""


# the cue itself: an utterance addressed to the assistant starts with its wake phrase
WAKE_PHRASE = re.compile(r"^\W*(?:(?:hey|okay|ok)\W+)?assistant\b", re.IGNORECASE)


def addresses_assistant(text: str) -> bool:
    return bool(WAKE_PHRASE.match(text or ""))


def usable_chat(r: dict) -> bool:
    """A stand-alone spoken chat request: the first turn of a dialogue, timed, with a reply, and
    not itself starting with the wake phrase (it is said with and without one)."""
    return (bool(r.get("words")) and bool((r.get("response") or "").strip()) and r.get("turn") == 0
            and not addresses_assistant(r.get("text") or ""))


SCAN_MAX, TRIES = 256, 48


def draw_line(rng, rows, ok, used: set[str]) -> dict | None:
    """One row of ``rows`` (a list, or a pool's lazy Rows) that is ``ok``, not in ``used`` while
    such rows are found: a small sequence is looked at whole, a large one sampled (a few reads
    however large the pool). None when none is ok."""
    n = len(rows)
    if not n:
        return None
    if n <= SCAN_MAX:
        fit = [r for r in rows if ok(r)]
        fresh = [r for r in fit if r["id"] not in used] or fit
        return pick(rng, fresh) if fresh else None
    spare = None
    for _ in range(TRIES):
        r = rows[int(rng.integers(n))]
        if ok(r):
            if r["id"] not in used:
                return r
            spare = spare or r
    return spare


class Speaker:
    """One voice of the episode and what it can say: line kind -> (rows, ok) to draw from."""

    def __init__(self, name: str, kind: str, lines: dict):
        self.name, self.kind, self.lines = name, kind, lines  # kind: user, synthetic, recorded

    def say(self, rng, what: str, used: set[str], where=None) -> dict | None:
        """A clip of one kind of line, not said before in the episode while others are left;
        None when this speaker has no such line."""
        for rows, ok in self.lines.get(what, []):  # in order of preference
            clip = draw_line(rng, rows, (lambda r, ok=ok: ok(r) and where(r)) if where else ok, used)
            if clip is not None:
                used.add(clip["id"])
                return clip
        return None


def always(_r) -> bool:
    return True


def recorded_other(rng, pool, exclude: set[str], cfg: dict) -> Speaker | None:
    """A recorded speaker of the `other` pool (English where the pool has it): their utterances
    no longer than max_other_s, or any of theirs when they have none that short."""
    if pool is None or not len(pool):
        return None

    def english(r):
        return (r.get("language") or "en").startswith("en")

    taken = set(exclude)
    try:
        first = pool.choice(rng, where=lambda r: english(r) and bool(r.get("speaker")) and r["speaker"] not in taken)
    except PlanError:
        return None
    rows = pool.with_value("speaker", first["speaker"])
    def short(r):
        return english(r) and r["duration_s"] <= cfg["max_other_s"]

    lines = [(rows, short), (rows, english)]
    return Speaker(first["speaker"], "recorded", {"talk": lines, "answer": lines})


def synthetic_other(rng, voices: list[str], prompts_by_intent: dict, chat, exclude: set[str]) -> Speaker | None:
    """Another synthetic voice: side replies from the prompts in its voice slot, and spoken chat
    requests in that voice where the chat pool has some."""
    free = [v for v in voices if v not in exclude]
    if not free:
        return None
    voice = pick(rng, free)
    answers = [([r for r in prompts_by_intent[SIDE_REPLY] if r["speaker"] == voice], always)]
    talk = ([(chat.with_value("speaker", voice), usable_chat)] if chat is not None else []) + answers
    return Speaker(voice, "synthetic", {"answer": answers, "talk": talk})


# ---------------------------------------------------------------- planning
class Timeline:
    """Turn-taking: where the next clip goes, and the segments and turns so far."""

    def __init__(self, cfg: dict, t0: float):
        self.cfg, self.next_word, self.audio_end = cfg, t0, 0.0
        self.segments: list[SegmentPlan] = []
        self.turns: list[TurnPlan] = []
        self.clips: list[dict] = []

    def place(self, clip: dict, role: str, attrs: dict, gain_db: float = 0.0, first_word_at: float | None = None):
        """A speech clip whose first word is at ``first_word_at`` (default: when the next person
        may speak), never before the audio before it has ended. Returns (segment, last word end)."""
        at = self.next_word if first_word_at is None else first_word_at
        start = max(at - first_word_s(clip), self.audio_end + self.cfg["min_clip_gap_s"])
        seg = SegmentPlan(clip=clip, start_s=start, kind="speech", role=role, gain_db=gain_db, attrs=attrs)
        self.segments.append(seg)
        self.clips.append(clip)
        self.audio_end = start + clip["duration_s"]
        return seg, seg.audible_end_s()

    def silent(self, rng, seg: SegmentPlan, last_word: float) -> float:
        """A stay_silent turn just after a segment nobody should answer; the next person speaks
        a moment after it."""
        trig = last_word + uniform(rng, self.cfg["silent_after_s"])
        self.turns.append(TurnPlan(trigger_s=trig, kind="stay_silent", evidence=[seg]))
        self.next_word = max(last_word + uniform(rng, self.cfg["turn_gap_s"]), trig + 0.05)
        return trig

    def reply(self, seg_list: list[SegmentPlan], last_word: float, text: str) -> None:
        self.turns.append(TurnPlan(trigger_s=last_word, kind="respond", text=text, evidence=list(seg_list)))
        lo, hi = self.cfg["reply_gap_s"]
        self.next_word = last_word + min(hi, max(lo, spoken_words(text) / self.cfg["words_per_s"]))


def exchange_kinds(rng, cfg: dict) -> list[str]:
    """At least one addressed and one side exchange, the rest drawn by weight, in random order."""
    n = int(rng.integers(cfg["exchanges"][0], cfg["exchanges"][1] + 1))
    names = sorted(cfg["weights"])
    w = [cfg["weights"][k] for k in names]
    more = rng.choice(len(names), size=max(0, n - 2), p=[x / sum(w) for x in w])
    drawn = ["addressed", "side"] + [names[int(i)] for i in more]
    return [drawn[int(i)] for i in rng.permutation(len(drawn))]


def plan(ctx: PlanContext) -> EpisodePlan:
    rng, cfg = ctx.rng, ctx.tables["replies"]
    prompts, chat, other_pool = ctx.pools["prompts"], ctx.pools.get("chat"), ctx.pools.get("other")
    by_intent = {i: prompt_rows(prompts, i) for i in (ADDRESS, WAKE, SIDE_TALK, SIDE_REPLY)}
    replies = cfg["templates"]
    # the user: a voice that can both ask the assistant and talk to a person
    voices = sorted({r["speaker"] for r in by_intent[ADDRESS] if value_of(r) in replies}
                    & {r["speaker"] for r in by_intent[SIDE_TALK]})
    if not voices:
        raise PlanError(f"the prompts pool has no voice with both {ADDRESS} and {SIDE_TALK} prompts "
                        "(manifests/spoken_prompts/addressee.yaml)")
    user_voice = pick(rng, voices)
    def mine(intent):
        return [([r for r in by_intent[intent] if r["speaker"] == user_voice], always)]

    user = Speaker(user_voice, "user", {
        ADDRESS: [([r for r in by_intent[ADDRESS] if r["speaker"] == user_voice and value_of(r) in replies], always)],
        WAKE: mine(WAKE), SIDE_TALK: mine(SIDE_TALK),
        "chat": [(chat.with_value("speaker", user_voice), usable_chat)] if chat is not None else []})
    # the other people: none has the user's voice, and no two share one
    synthetic_voices = sorted({r["speaker"] for r in by_intent[SIDE_REPLY]} - {user_voice})
    others: list[Speaker] = []
    taken = {user_voice}
    for _ in range(int(rng.integers(cfg["other_speakers"][0], cfg["other_speakers"][1] + 1))):
        makers = [lambda: recorded_other(rng, other_pool, taken, cfg),
                  lambda: synthetic_other(rng, synthetic_voices, by_intent, chat, taken)]
        if rng.random() >= cfg["human_other_p"]:
            makers.reverse()
        person = makers[0]() or makers[1]()
        if person is None:
            break
        others.append(person)
        taken.add(person.name)
    if not others:
        raise PlanError("no other speaker: map an `other` pool, or give the prompts pool a second voice with "
                        f"{SIDE_REPLY} prompts")

    tl = Timeline(cfg, uniform(rng, cfg["lead_s"]))
    tl.segments.append(background_bed(ctx.pools["noise"].choice(rng), uniform(rng, cfg["bed_gain_db"])))
    used: set[str] = set()
    asked_people: list[str] = []  # request values the user has asked a person: later asked of the assistant
    gains = {o.name: uniform(rng, cfg["other_gain_db"]) for o in others}
    for kind in exchange_kinds(rng, cfg):
        if kind == "addressed":
            request = user.say(rng, "chat", used) if rng.random() < cfg["chat_request_p"] else None
            wake = user.say(rng, WAKE, used) if request is not None else None
            if request is not None and wake is not None:
                wseg, wake_end = tl.place(wake, "user", {"speaker": user.name, "addressed": True, "part": "wake",
                                                         "source": "prompt"})
                gap = uniform(rng, cfg["wake_gap_s"])
                rseg, last = tl.place(request, "user", {"speaker": user.name, "addressed": True, "part": "request",
                                                        "source": "chat"}, first_word_at=wake_end + gap)
                pause = rseg.start_s + first_word_s(request) - wake_end
                if pause >= cfg["wake_pause_silent_s"]:  # "Hey assistant." ... a naive model answers the wake phrase
                    tl.turns.append(TurnPlan(trigger_s=wake_end + min(0.3, pause / 2), kind="stay_silent",
                                             evidence=[wseg]))
                tl.reply([wseg, rseg], last, request["response"])
            else:
                again = [v for v in asked_people if any(value_of(r) == v for r in user.lines[ADDRESS][0][0])]
                want = pick(rng, again) if again and rng.random() < 0.5 else None
                clip = user.say(rng, ADDRESS, used, where=(lambda r, want=want: value_of(r) == want) if want else None)
                if clip is None:
                    raise PlanError(f"the user's voice has no {ADDRESS} prompt")
                seg, last = tl.place(clip, "user", {"speaker": user.name, "addressed": True, "source": "prompt",
                                                    "request": value_of(clip)})
                tl.reply([seg], last, pick(rng, replies[value_of(clip)]))
        elif kind == "side":
            clip = user.say(rng, "chat", used) if rng.random() < cfg["chat_side_talk_p"] else None
            if clip is not None:
                attrs = {"speaker": user.name, "addressed": False, "source": "chat"}
            else:
                clip = user.say(rng, SIDE_TALK, used)
                if clip is None:
                    raise PlanError(f"the user's voice has no {SIDE_TALK} prompt")
                attrs = {"speaker": user.name, "addressed": False, "source": "prompt", "request": value_of(clip)}
                asked_people.append(value_of(clip))
            seg, last = tl.place(clip, "user", attrs)
            tl.silent(rng, seg, last)
            order = [others[int(i)] for i in rng.permutation(len(others))]
            for person in order[: int(rng.integers(cfg["side_answers"][0], cfg["side_answers"][1] + 1))]:
                say = person.say(rng, "answer", used)
                if say is None:
                    continue
                seg, last = tl.place(say, "other", {"speaker": person.name, "addressed": False, "source": person.kind},
                                     gain_db=gains[person.name])
                tl.silent(rng, seg, last)
        else:  # the other people talk among themselves or to the user
            order = [others[int(i)] for i in rng.permutation(len(others))]
            for person in order:
                say = person.say(rng, "talk", used)
                if say is None:
                    continue
                seg, last = tl.place(say, "other", {"speaker": person.name, "addressed": False, "source": person.kind},
                                     gain_db=gains[person.name])
                tl.silent(rng, seg, last)
    last_turn = max(t.trigger_s for t in tl.turns)
    return EpisodePlan(
        segments=tl.segments, turns=tl.turns, language="en",
        system_prompt=pick(rng, ctx.tables["instructions"]["system_prompts"]),
        min_duration_s=max(tl.audio_end, last_turn + uniform(rng, cfg["tail_s"])),
        text_writer="reply-templates+" + "+".join(sorted({c["text_by"] for c in tl.clips if c.get("text_by")})),
        tts=speakers([c for c in tl.clips if c.get("text_by")]), aligner=aligners(tl.clips),
    )


RECIPE = Recipe(
    subtask="agent_addressee", ability="environment_agent", version="1",
    pools={"prompts": PoolSpec("speech", requires=("words", "intent"),
                               description="spoken prompts (address, address_wake, side_talk, side_reply)"),
           "chat": PoolSpec("speech", requires=("words", "response", "dialogue"), optional=True,
                            description="spoken chat requests with their replies (one voice per dialogue)"),
           "other": PoolSpec("speech", requires=("speaker",), optional=True,
                             description="recorded speakers for the other people in the room"),
           "noise": PoolSpec("noise", description="background beds")},
    tables={"replies": RequestReplies("scene/addressee.yaml"),
            "instructions": InstructionBank("instructions/agent_addressee.yaml")},
    plan=plan, description=__doc__,
)
