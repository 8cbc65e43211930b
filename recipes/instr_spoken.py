"""instr_spoken: 1-3 spoken instructions (the first request of a chat dialogue, e.g. UltraChat
or Magpie-Pro, spoken by TTS) in one user voice where the pool allows; each is answered with
the source's response when its last word ends. Comprehension-aware silence: some
instructions stop mid-sentence, right after a word such as "the" or "of" (two segments of
the same clip, split between two words, with a pause between them), and get a stay_silent
turn in that pause; the answer waits for the last word of the second part.
Policy: manifests/instr/spoken.yaml."""
from streamaudio.plan import (EpisodePlan, InstructionBank, PlanContext, PlanError, PoolSpec, Recipe, SegmentPlan,
                              TurnPlan, YamlTable, background_bed, pick)

from ._instr import clip_end, part_text, split_at_word
from ._speech import aligners, main_language


def standalone(r: dict) -> bool:
    """A dialogue's first request with timings and a reply: a later turn leans on what came
    before it, which this stream lacks."""
    return bool(r["words"]) and bool(r["response"]) and r.get("turn", -1) <= 0


def plan(ctx: PlanContext) -> EpisodePlan:
    rng, policy = ctx.rng, ctx.tables["policy"]
    pool = ctx.pools["speech"]
    lo, hi = policy["instructions_per_episode"]
    first = pool.choice(rng, where=standalone)
    voice = first["speaker"]
    requests = [first]
    for _ in range(int(rng.integers(lo, hi + 1)) - 1):
        used = {r["id"] for r in requests}
        # one user: the same voice when the pool has another request in it, any voice otherwise
        fits = [lambda r, used=used: standalone(r) and r["id"] not in used and r["speaker"] == voice,
                lambda r, used=used: standalone(r) and r["id"] not in used]
        for where in fits:
            try:
                requests.append(pool.choice(rng, where=where))
                break
            except PlanError:  # nothing fits this one: try the next
                pass
        else:
            break  # a pool with fewer requests than asked for: a shorter episode
    segments = [background_bed(ctx.pools["noise"].choice(rng), float(rng.uniform(*policy["bed_gain_db"])))]
    turns = []
    pause = policy["pause"]
    t = float(rng.uniform(*policy["lead_s"]))
    for req in requests:
        cut = (split_at_word(req, rng, int(pause["min_words_each_side"]), set(pause["after_words"]))
               if rng.random() < pause["probability"] else None)
        if cut is None:
            seg = SegmentPlan(clip=req, start_s=t, kind="speech", role="user")
            segments.append(seg)
            turns.append(TurnPlan(trigger_s=seg.audible_end_s(), kind="respond", text=req["response"], evidence=[seg]))
        else:
            gap = round(float(rng.uniform(*pause["pause_s"])), 3)
            head = SegmentPlan(clip=req, start_s=t, kind="speech", role="user", clip_dur_s=cut,
                               text=part_text(req, 0.0, cut), attrs={"part": 1, "parts": 2, "pause_after_s": gap})
            tail = SegmentPlan(clip=req, start_s=t + cut + gap, kind="speech", role="user", clip_start_s=cut,
                               text=part_text(req, cut, req["duration_s"]), attrs={"part": 2, "parts": 2})
            segments += [head, tail]
            # the user stopped mid-request: a naive model would answer the fragment here
            wait = min(float(rng.uniform(*pause["silent_after_s"])), gap - 0.2)
            turns.append(TurnPlan(trigger_s=head.audible_end_s() + wait, kind="stay_silent", evidence=[head]))
            turns.append(TurnPlan(trigger_s=tail.audible_end_s(), kind="respond", text=req["response"],
                                  evidence=[head, tail]))
        t = clip_end(segments[-1]) + float(rng.uniform(*policy["gap_s"]))
    end = clip_end(segments[-1]) + float(rng.uniform(*policy["tail_s"]))
    return EpisodePlan(segments=segments, turns=turns, language=main_language(requests) or "en",
                       system_prompt=pick(rng, ctx.tables["instructions"]["system_prompts"]), min_duration_s=end,
                       text_writer="+".join(["source-reply", *sorted({r["text_by"] for r in requests if r.get("text_by")})]),
                       tts=",".join(sorted({r["speaker"] for r in requests})), aligner=aligners(requests))


RECIPE = Recipe(
    subtask="instr_spoken", ability="instruction_following", version="1",
    pools={"speech": PoolSpec("speech", requires=("words", "response"),
                              description="spoken chat requests with their replies (UltraChat, Magpie-Pro)"),
           "noise": PoolSpec("noise", description="background beds")},
    tables={"policy": YamlTable("instr/spoken.yaml"),
            "instructions": InstructionBank("instructions/instr_spoken.yaml")},
    plan=plan, description=__doc__,
)
