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

from streamaudio.plan import (EpisodePlan, InstructionBank, PlanContext, PlanError, PoolSpec, Recipe, SegmentPlan,
                              TurnPlan, YamlTable, background_bed, pick)
from streamaudio.text.curation import suitable

from ._instr import AnswerTemplates, clip_end, fill, prompt_values, spoken_prompt, target_clips, templates
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
    events, prompts, others = ctx.pools["events"], ctx.pools.get("prompts"), ctx.pools.get("other")
    count_words = {int(k): v for k, v in cfg["count_words"].items()}
    candidates = [lab for lab in cfg["labels"] if events.label_count(lab)]
    if not candidates:
        raise PlanError(f"pool {events.name!r} has none of the target labels of audio/counting.yaml")
    n_targets = int(rng.integers(cfg["targets"][0], min(cfg["targets"][1], max(count_words)) + 1))
    for k in rng.permutation(len(candidates)):  # a label with a clip that can be placed
        target = candidates[int(k)]
        hits = target_clips(events, target, rng, n_targets)
        if hits:
            break
    else:
        raise PlanError(f"pool {events.name!r} has no suitable clip of any target label ({candidates})")
    entry = cfg["labels"][target]
    phrase = entry["phrase"]
    means_target = {target, *entry.get("same_as", [])}
    spoken = (prompts is not None and target in prompt_values(prompts, "count_when", "label")
              and rng.random() < cfg["spoken_probability"])

    n_sounds = int(rng.integers(cfg["distractor_sounds"][0], cfg["distractor_sounds"][1] + 1))
    n_speech = int(rng.integers(cfg["distractor_speech"][0], cfg["distractor_speech"][1] + 1)) if others else 0
    n_sounds = max(n_sounds, n_targets - n_speech)  # a distractor before every X
    # a sound no assistant may stay silent on (a smoke alarm, a scream) is never a distractor
    never = means_target | set(cfg.get("never_distractors") or ())
    distractors = events.sample(rng, n_sounds, where=lambda r: suitable(r) and not never & set(r["labels"]))
    if not distractors or never & {lab for c in distractors for lab in c["labels"]}:
        raise PlanError(f"pool {events.name!r} has no suitable distractor without {target!r} or a hazard")
    talk = others.sample(rng, n_speech) if n_speech else []
    items = [("distractor", c) for c in distractors] + [("other", c) for c in talk]
    items = [items[int(i)] for i in rng.permutation(len(items))]
    # each X right after a different distractor: never first, never two in a row
    places = sorted(int(i) for i in rng.choice(range(1, len(items) + 1), size=len(hits), replace=False))
    for place, clip in reversed(list(zip(places, hits))):
        items.insert(place, ("target", clip))

    segments = [background_bed(ctx.pools["noise"].choice(rng), float(rng.uniform(*cfg["bed_gain_db"])))]
    turns: list[TurnPlan] = []
    t = float(rng.uniform(*cfg["lead_s"]))
    if spoken:
        clip, _ = spoken_prompt(prompts, rng, "count_when", f"label={target}")
        seg = SegmentPlan(clip=clip, start_s=t, kind="speech", role="user", attrs={"request": "count_when"})
        segments.append(seg)
        # the request needs no answer now: a naive model would reply to it (or say "zero so far")
        trig = seg.audible_end_s() + float(rng.uniform(*cfg["reply_delay_s"]))
        turns.append(TurnPlan(trigger_s=trig, kind="stay_silent", evidence=[seg]))
        t = max(clip_end(seg), trig) + float(rng.uniform(*cfg["gap_s"]))
    count = 0
    pad0, pad1 = cfg["pad_s"]
    for role, clip in items:
        delay = float(rng.uniform(*cfg["reply_delay_s"]))
        if role == "other":
            seg = SegmentPlan(clip=clip, start_s=t, kind="speech", role="other",
                              gain_db=float(rng.uniform(*cfg["speech_gain_db"])), attrs={"distractor": True})
            segments.append(seg)
            trig = seg.audible_end_s() + delay
            turns.append(TurnPlan(trigger_s=trig, kind="stay_silent", evidence=[seg]))
        else:
            cut0 = max(0.0, clip["active_start_s"] - pad0)
            cut1 = min(clip["duration_s"], clip["active_end_s"] + pad1)
            attrs = {"target_label": target, "is_target": role == "target"}
            if role == "target":
                count += 1
                attrs["count"] = count  # the running count the reply says, for readers of the data
            seg = SegmentPlan(clip=clip, start_s=t, kind="music" if "Music" in clip["labels"] else "sound",
                              role="environment", gain_db=float(rng.uniform(*cfg["sound_gain_db"])),
                              clip_start_s=cut0, clip_dur_s=cut1 - cut0, attrs=attrs)
            segments.append(seg)
            trig = seg.audible_end_s() + delay  # the active span's end: X has been heard in full
            if role == "target":
                named = bool(rng.random() < cfg["named_probability"])
                turns.append(TurnPlan(trigger_s=trig, kind="respond", evidence=[seg],
                                      text=reply_text(ctx, rng, count_words, count, phrase, named)))
            else:
                turns.append(TurnPlan(trigger_s=trig, kind="stay_silent", evidence=[seg]))
        # the next item starts after this one and at least two chunks after its turn
        end = max(clip_end(seg), trig)
        t = max(clip_end(seg) + float(rng.uniform(*cfg["gap_s"])), trig + 0.8)
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
