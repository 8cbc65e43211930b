"""instr_deferred_trigger: "tell me when you hear X". The request is either spoken by the user
at the start (a notify_when prompt) or the text system prompt. Then distractors: sound
events without X (and without the labels that also mean X) and other people talking (role
other); then X, once or twice, interleaved with more distractors. The model stays silent
through the request and every distractor (an explicit stay_silent turn on each, due when it
ends) and responds a moment after each X ends (its active span's end) with "I just heard
<X>". Only labels that both the label table (manifests/instr/deferred_trigger.yaml) and the
sound pool have can be targets; a spoken request also needs a prompt for X in the prompts pool."""
from streamaudio.plan import (EpisodePlan, InstructionBank, PlanContext, PlanError, PoolSpec, Recipe, SegmentPlan,
                              TurnPlan, YamlTable, background_bed, pick)
from streamaudio.text.curation import suitable

from ._instr import AnswerTemplates, clip_end, fill, prompt_values, spoken_prompt, target_clips, templates
from ._speech import aligners, main_language

def plan(ctx: PlanContext) -> EpisodePlan:
    rng, cfg = ctx.rng, ctx.tables["trigger"]
    events, prompts, others = ctx.pools["events"], ctx.pools.get("prompts"), ctx.pools.get("other")
    candidates = [lab for lab in cfg["labels"] if events.label_count(lab)]
    if not candidates:
        raise PlanError(f"pool {events.name!r} has none of the target labels of instr/deferred_trigger.yaml")
    n_targets = int(rng.integers(cfg["targets"][0], cfg["targets"][1] + 1))
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
    spoken = (prompts is not None and target in prompt_values(prompts, "notify_when", "label")
              and rng.random() < cfg["spoken_probability"])

    n_sounds = int(rng.integers(cfg["distractor_sounds"][0], cfg["distractor_sounds"][1] + 1))
    n_speech = int(rng.integers(cfg["distractor_speech"][0], cfg["distractor_speech"][1] + 1)) if others else 0
    n_sounds = max(n_sounds, n_targets - n_speech)  # a distractor before every X
    # a sound no assistant may stay silent on (a smoke alarm, a scream) is never a distractor
    never = means_target | set(cfg.get("never_distractors") or ())
    distractors = events.sample(rng, n_sounds, where=lambda r: suitable(r) and not never & set(r["labels"]))
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
        clip, _ = spoken_prompt(prompts, rng, "notify_when", f"label={target}")
        seg = SegmentPlan(clip=clip, start_s=t, kind="speech", role="user", attrs={"request": "notify_when"})
        segments.append(seg)
        # the request needs no answer now: a naive model would reply to it (or say it hears nothing)
        trig = seg.audible_end_s() + float(rng.uniform(*cfg["reply_delay_s"]))
        turns.append(TurnPlan(trigger_s=trig, kind="stay_silent", evidence=[seg]))
        t = max(clip_end(seg), trig) + float(rng.uniform(*cfg["gap_s"]))
    heard = 0
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
            seg = SegmentPlan(clip=clip, start_s=t, kind="music" if "Music" in clip["labels"] else "sound",
                              role="environment", gain_db=float(rng.uniform(*cfg["sound_gain_db"])),
                              clip_start_s=cut0, clip_dur_s=cut1 - cut0,
                              attrs={"target_label": target, "is_target": role == "target"})
            segments.append(seg)
            trig = seg.audible_end_s() + delay  # the active span's end: X has been heard in full
            if role == "target":
                key = "heard" if heard == 0 else "heard_again"
                turns.append(TurnPlan(trigger_s=trig, kind="respond", evidence=[seg],
                                      text=fill(pick(rng, templates(ctx, "texts", key)), label_phrase=phrase)))
                heard += 1
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
