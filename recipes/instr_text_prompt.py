"""instr_text_prompt: the text system prompt alone sets a rule for the whole stream ("only
answer questions about cooking", "tell me whenever a number is mentioned"); then 3-6
utterances (spoken chat requests with their replies, and read speech when the catalog gives
a `read` pool), some of which fire the rule and some not, at least one of each. The model
responds, when an utterance's last word ends, only where the rule fires (with the source's
reply or a template naming what fired it) and gets a stay_silent turn on every other
utterance. Rules are data (manifests/instr/text_prompt_rules.yaml): system prompts, a
machine-checkable condition (keywords, number words) and how to reply; with an LLM the
prompts and reply templates are paraphrased (AnswerTemplates)."""
from streamaudio.plan import (EpisodePlan, PlanContext, PlanError, PoolSpec, Recipe, SegmentPlan, TurnPlan, YamlTable,
                              background_bed, pick)

from ._instr import AnswerTemplates, clip_end, fill, rule_matches, templates
from ._speech import aligners, main_language


def standalone(r: dict) -> bool:
    """A dialogue's first request: the reply to a later one leans on what came before it."""
    return bool(r["response"]) and r.get("turn", -1) <= 0


def said(matches: list[str]) -> str:
    """What fired the rule, as a reply says it: "ship and harbour", "red, blue and green"; a
    list of numbers keeps commas only ("fifteen, two hundred and forty")."""
    if len(matches) == 1 or any(" and " in m for m in matches):
        return ", ".join(matches)
    return ", ".join(matches[:-1]) + " and " + matches[-1]


def plan(ctx: PlanContext) -> EpisodePlan:
    rng, cfg = ctx.rng, ctx.tables["rules"]
    questions, read = ctx.pools["questions"], ctx.pools.get("read")
    n = int(rng.integers(cfg["utterances_per_episode"][0], cfg["utterances_per_episode"][1] + 1))
    n_fire = min(n - 1, max(1, round(float(rng.uniform(*cfg["firing_share"])) * n)))
    used: set = set()

    def draw(pools, fits):
        """An utterance that fits from one of ``pools`` (in random order), not heard before
        in this episode when that is possible; None when none fits."""
        pools = [pools[int(i)] for i in rng.permutation(len(pools))]
        for fresh in (True, False):
            for pool, base in pools:
                try:
                    return pool.choice(rng, where=lambda r, base=base, fresh=fresh: base(r) and fits(r)
                                       and (not fresh or r["id"] not in used))
                except PlanError:
                    continue
        return None

    why = []
    for name in [list(cfg["rules"])[int(i)] for i in rng.permutation(len(cfg["rules"]))]:
        rule = cfg["rules"][name]
        fires = lambda r, c=rule["condition"]: bool(rule_matches(r["text"], c, cfg["number_words"]))  # noqa: E731
        anything = lambda r: bool(r["text"])  # noqa: E731
        speakers = [(questions, anything)] + ([(read, anything)] if read is not None else [])
        # a rule answered with the source's reply fires only on requests whose reply stands alone
        firing_from = [(questions, standalone)] if rule["reply"] == "response" else speakers
        picked, used = [], set()
        for k in range(n):
            clip = draw(firing_from, fires) if k < n_fire else draw(speakers, lambda r, fires=fires: not fires(r))
            if clip is None:
                break
            used.add(clip["id"])
            picked.append((k < n_fire, clip))
        if len(picked) == n:
            break
        why.append(f"{name}: no {'firing' if len(picked) < n_fire else 'non-firing'} utterance")
    else:
        raise PlanError("no rule of instr/text_prompt_rules.yaml can be both fired and not fired by the "
                        f"{ctx.split} pools ({'; '.join(why)})")
    picked = [picked[int(i)] for i in rng.permutation(len(picked))]

    segments = [background_bed(ctx.pools["noise"].choice(rng), float(rng.uniform(*cfg["bed_gain_db"])))]
    turns: list[TurnPlan] = []
    t = float(rng.uniform(*cfg["lead_s"]))
    end = t
    for firing, clip in picked:
        seg = SegmentPlan(clip=clip, start_s=t, kind="speech", role="user", attrs={"rule": name, "fires": firing})
        segments.append(seg)
        if firing:
            if rule["reply"] == "response":
                text = clip["response"]
            else:
                matches = list(dict.fromkeys(rule_matches(clip["text"], rule["condition"], cfg["number_words"])))
                key = rule["reply"].split(":", 1)[1]
                text = fill(pick(rng, templates(ctx, "texts", key)), match=said(matches))
            trig = seg.audible_end_s()
            turns.append(TurnPlan(trigger_s=trig, kind="respond", text=text, evidence=[seg]))
        else:  # the rule does not fire: a naive model would answer any question it hears
            trig = seg.audible_end_s() + float(rng.uniform(*cfg["silent_after_s"]))
            turns.append(TurnPlan(trigger_s=trig, kind="stay_silent", evidence=[seg]))
        end = max(clip_end(seg), trig)
        t = max(clip_end(seg) + float(rng.uniform(*cfg["gap_s"])), trig + 0.8)
    clips = [c for _, c in picked]
    writers = sorted({c["text_by"] for c in clips if c.get("text_by")})
    return EpisodePlan(segments=segments, turns=turns, language=main_language(clips),
                       system_prompt=fill(pick(rng, templates(ctx, "texts", name)), subject=rule["subject"]),
                       min_duration_s=end + float(rng.uniform(*cfg["tail_s"])),
                       text_writer="+".join([f"rule-table:{name}",
                                             *(["source-reply"] if rule["reply"] == "response" else []), *writers]),
                       tts=",".join(sorted({c["speaker"] for c in clips if c.get("text_by")})), aligner=aligners(clips))


RECIPE = Recipe(
    subtask="instr_text_prompt", ability="instruction_following", version="1",
    pools={"questions": PoolSpec("speech", requires=("words", "response"),
                                 description="spoken chat requests with their replies"),
           "read": PoolSpec("speech", requires=("text",), optional=True,
                            description="read speech (fires only rules answered with a template)"),
           "noise": PoolSpec("noise", description="background beds")},
    tables={"rules": YamlTable("instr/text_prompt_rules.yaml"),
            "texts": AnswerTemplates("instr/text_prompt_rules.yaml")},
    plan=plan, description=__doc__,
)
