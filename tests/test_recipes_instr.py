"""The instruction_following recipes: instr_spoken, instr_deferred_trigger, instr_task_switch,
instr_text_prompt. Plan-level checks on the fixture pools (each sub-task's semantics
recomputed here from the plan's clips and the recipe's data tables, not from the recipe's
code), the utterance-summaries provider (offline, a stub LLM, the dev server, the cache), and
the same semantics on built episodes when the demo build has these sub-tasks."""
import itertools
import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest

from streamaudio.build.shards import episode_row
from streamaudio.plan import PlanContext, PlanError, Pool, episode_seed, load_recipes
from streamaudio.plan.store import plan_to_dict
from streamaudio.render.label import episode_violations
from conftest import noise_track  # noqa: E402

SUBTASKS = ("instr_spoken", "instr_deferred_trigger", "instr_task_switch", "instr_text_prompt")
MAPPING = {"instr_spoken": {"speech": "spoken", "noise": "noise"},
           "instr_deferred_trigger": {"events": "sound", "prompts": "prompts", "other": "aligned", "noise": "noise"},
           "instr_task_switch": {"prompts": "prompts", "utterances": "librispeech", "translatable": "translated",
                                 "noise": "noise"},
           "instr_text_prompt": {"questions": "spoken", "read": "aligned", "noise": "noise"}}
N = 12


@pytest.fixture(scope="module")
def recipes():
    return load_recipes()


def plan_for(recipe, pools, eid, mapping=None, seed=7):
    mapping = mapping or MAPPING[recipe.subtask]
    ctx = PlanContext(episode_id=eid, subtask=recipe.subtask, split="train",
                      rng=np.random.default_rng(episode_seed(seed, eid)),
                      pools={p: Pool(p, pools[s] if isinstance(s, str) else s) for p, s in mapping.items()},
                      tables=recipe.offline_tables())
    return recipe.plan(ctx)


def to_row(recipe, plan, eid="e"):
    return episode_row(json.loads(json.dumps(plan_to_dict(plan))), episode_id=eid, subtask=recipe.subtask,
                       ability=recipe.ability, split="train", recipe_version=recipe.version, seed=0, chunk_s=0.4)


def turns_on(plan, seg):
    """The turns whose evidence names this segment."""
    return [t for t in plan.turns if any(e is seg for e in t.evidence)]


def words(text: str) -> list[str]:
    """Words as the tests count them (independent of the recipes' tokeniser)."""
    return [w for w in re.findall(r"[a-z0-9']+", text.lower().replace(",", "")) if any(c.isalnum() for c in w)]


# ---------------------------------------------------------------- instr_spoken
def test_instr_spoken_answers_each_request_with_its_response_at_its_last_word(recipes, clip_pools):
    recipe = recipes["instr_spoken"]
    after = set(recipe.offline_tables()["policy"]["pause"]["after_words"])
    splits = multi = 0
    for i in range(N):
        plan = plan_for(recipe, clip_pools, f"sp-{i}")
        user = [s for s in plan.segments if s.role == "user"]
        groups: dict[str, list] = {}
        for s in user:
            groups.setdefault(s.clip["id"], []).append(s)
        multi += len(groups) > 1
        responds = [t for t in plan.turns if t.kind == "respond"]
        assert len(responds) == len(groups)
        for parts in groups.values():
            clip = parts[0].clip
            assert clip["turn"] <= 0 and clip["response"]
            last = parts[-1]
            (answer,) = [t for t in turns_on(plan, last) if t.kind == "respond"]
            assert answer.text == clip["response"]
            last_word_end = last.start_s + clip["words"][-1]["end_s"] - last.clip_start_s
            assert answer.trigger_s == pytest.approx(last_word_end)
            # nothing is answered while the request is still being said
            assert not [t for t in responds if parts[0].start_s <= t.trigger_s < last_word_end - 1e-9]
            if len(parts) == 2:
                splits += 1
                head, tail = parts
                cut = head.clip_dur_s
                assert tail.clip_start_s == cut and tail.start_s > head.start_s + cut + 0.5  # a real pause
                before = [w for w in clip["words"] if w["end_s"] <= cut]
                assert before and before[-1]["text"].lower().strip(".,?!") in after
                assert f"{head.text} {tail.text}" == " ".join(w["text"] for w in clip["words"])
                (silent,) = [t for t in turns_on(plan, head) if t.kind == "stay_silent"]
                assert silent.evidence == [head]
                assert head.start_s + before[-1]["end_s"] <= silent.trigger_s < tail.start_s
            else:
                assert len(parts) == 1
        assert episode_violations(to_row(recipe, plan)) == []
    assert splits and multi


# ---------------------------------------------------------------- instr_deferred_trigger
def deferred_target(plan_segments, system_prompt: str, labels: dict) -> tuple[str, bool]:
    """(X, spoken): the label a spoken notify_when request names, else the one whose phrase
    the system prompt says."""
    for s in plan_segments:
        if s["role"] == "user" and "notify_when" in s["labels"]:
            return next(lab.split("=", 1)[1] for lab in s["labels"] if lab.startswith("label=")), True
    (x,) = [lab for lab, e in labels.items() if e["phrase"] in system_prompt]
    return x, False


def test_instr_deferred_trigger_speaks_only_after_the_target(recipes, clip_pools):
    recipe = recipes["instr_deferred_trigger"]
    labels = recipe.offline_tables()["trigger"]["labels"]
    never = recipe.offline_tables()["trigger"]["never_distractors"]
    assert "Smoke detector, smoke alarm" in never
    modes, counts, other_talk = set(), set(), 0
    for i in range(N):
        plan = plan_for(recipe, clip_pools, f"dt-{i}")
        segs = [{"role": s.role, "labels": s.labels or s.clip.get("labels") or []} for s in plan.segments]
        target, spoken = deferred_target(segs, plan.system_prompt, labels)
        modes.add(spoken)
        means = {target, *labels[target]["same_as"]}
        events = [s for s in plan.segments if s.role in ("environment", "other")]
        hits = [s for s in events if s.role == "environment" and means & set(s.clip["labels"])]
        assert hits and not (means & set(events[0].clip.get("labels") or [])), "X comes after a distractor"
        counts.add(len(hits))
        for a, b in itertools.pairwise(events):
            assert not (a in hits and b in hits), "a distractor between two Xs"
        responds = [t for t in plan.turns if t.kind == "respond"]
        assert len(responds) == len(hits)
        for s in plan.segments[1:]:
            on = turns_on(plan, s)
            assert len(on) == 1, "every request, distractor and X has exactly one turn"
            (turn,) = on
            if s in hits:
                active_end = s.start_s + s.clip["active_end_s"] - s.clip_start_s
                assert turn.kind == "respond" and labels[target]["phrase"] in turn.text
                assert active_end < turn.trigger_s <= active_end + 2.0
            else:
                assert turn.kind == "stay_silent", (s.role, s.clip["id"])
                other_talk += s.role == "other"
                # never silent on a hazard: a smoke alarm is no distractor
                assert not set(s.clip.get("labels") or []) & set(never), s.clip["labels"]
        first_hit_end = min(s.start_s + s.clip["active_end_s"] - s.clip_start_s for s in hits)
        assert all(t.trigger_s > first_hit_end for t in responds)
        assert episode_violations(to_row(recipe, plan)) == []
    assert modes == {True, False} and counts == {1, 2} and other_talk


def test_instr_deferred_trigger_targets_only_labels_of_the_table_and_the_pool(recipes, clip_pools):
    recipe = recipes["instr_deferred_trigger"]
    labels = recipe.offline_tables()["trigger"]["labels"]
    # dogs and sounds that are no target at all: the dog is the only label both have. Barks
    # without the Dog label also mean a dog was heard ("same_as"): never a distractor
    only_dogs = [r for r in clip_pools["sound"] if not set(r["labels"]) & (set(labels) - {"Dog"})]
    barks = [{**r, "id": r["id"] + "#bark", "labels": ["Bark"]} for r in only_dogs if "Dog" in r["labels"]]
    assert "Bark" in labels["Dog"]["same_as"] and barks
    for i in range(8):
        plan = plan_for(recipe, clip_pools, f"dog-{i}",
                        mapping={**MAPPING["instr_deferred_trigger"], "events": only_dogs + barks * 3})
        segs = [{"role": s.role, "labels": s.labels or s.clip.get("labels") or []} for s in plan.segments]
        assert deferred_target(segs, plan.system_prompt, labels)[0] == "Dog"
        assert not [s for s in plan.segments if s.clip["labels"] == ["Bark"]]
    no_target = [r for r in clip_pools["sound"] if not set(r["labels"]) & set(labels)]
    with pytest.raises(PlanError, match="target labels"):
        plan_for(recipe, clip_pools, "none", mapping={**MAPPING["instr_deferred_trigger"], "events": no_target})


# ---------------------------------------------------------------- instr_task_switch
def expected_tasks(plan):
    """(segment, task, language) for every utterance, from the spoken instructions heard before it."""
    task = lang = None
    out, switches = [], []
    for s in sorted(plan.segments[1:], key=lambda s: s.start_s):
        labels = s.clip.get("labels") or []
        if s.clip["corpus"] == "prompts":
            slot = next(lab for lab in labels if "=" in lab)
            task, lang = ("translate_to", slot.split("=", 1)[1]) if labels[0] == "translate_to" else (slot.split("=", 1)[1], None)
            switches.append((s, task, lang))
        else:
            assert task is not None, "an utterance before any instruction"
            out.append((s, task, lang))
    return out, switches


def template_regex(template: str) -> re.Pattern:
    parts = re.split(r"(\{\w+\})", template)
    return re.compile("^" + "".join(f"(?P<{p[1:-1]}>.+)" if p.startswith("{") else re.escape(p) for p in parts) + "$")


def test_instr_task_switch_replies_follow_the_task_in_force(recipes, clip_pools):
    recipe = recipes["instr_task_switch"]
    tables = recipe.offline_tables()
    summarise = [template_regex(t) for t in tables["texts"]["templates"]["summarise"]]
    names = tables["tasks"]["language_names"]
    seen = set()
    for i in range(N):
        plan = plan_for(recipe, clip_pools, f"ts-{i}")
        utterances, instructions = expected_tasks(plan)
        tasks = [t for _, t, _ in instructions]
        assert 2 <= len(tasks) <= 3 and all(a != b for a, b in itertools.pairwise(tasks)), tasks
        for seg, task, lang in instructions:
            (ack,) = turns_on(plan, seg)
            assert ack.kind == "respond" and ack.text.strip()
            assert ack.trigger_s == pytest.approx(seg.start_s + seg.clip["words"][-1]["end_s"])
            if task == "translate_to":
                assert names[lang] in ack.text
        for seg, task, lang in utterances:
            seen.add(task)
            (turn,) = turns_on(plan, seg)
            clip, text = seg.clip, seg.clip["text"]
            assert turn.kind == "respond"
            end = seg.start_s + (clip["words"][-1]["end_s"] if clip["words"] else clip["duration_s"])
            assert turn.trigger_s == pytest.approx(end)
            if task == "transcribe":
                assert turn.text == text
            elif task == "count_words":
                assert re.findall(r"\d+", turn.text) == [str(len(words(text)))], (turn.text, text)
            elif task == "translate_to":
                assert clip["translation_language"] == lang and turn.text == clip["translation"]
            else:  # summarise: fewer words, all of them the utterance's (the offline rule only drops words)
                m = next(r.match(turn.text) for r in summarise if r.match(turn.text))
                summary = words(m["summary"])
                assert summary and len(summary) < len(words(text)) and set(summary) <= set(words(text))
        assert episode_violations(to_row(recipe, plan)) == []
    assert seen == {"transcribe", "count_words", "summarise", "translate_to"}


def test_instr_task_switch_without_translations_uses_the_other_tasks(recipes, clip_pools):
    recipe = recipes["instr_task_switch"]
    mapping = {k: v for k, v in MAPPING["instr_task_switch"].items() if k != "translatable"}
    for i in range(6):
        plan = plan_for(recipe, clip_pools, f"nt-{i}", mapping=mapping)
        _, instructions = expected_tasks(plan)
        assert {t for _, t, _ in instructions} <= {"transcribe", "count_words", "summarise"}


# ---------------------------------------------------------------- instr_text_prompt
def fires(text: str, condition: dict, number_words: list[str]) -> list[str]:
    """What fires a rule, recomputed from the rule table."""
    toks = words(text)
    hits = []
    for k in condition.get("keywords") or []:
        hits += [w for w in toks if (w.startswith(k[:-1]) if k.endswith("*") else w == k)]
    if condition.get("numbers"):
        hits += [w for w in toks if w in number_words or w.isdigit()]
    return hits


def rule_prompts(table: dict, rule: str) -> list[str]:
    """The system prompts of a rule as the table words them (its subject filled in)."""
    return [t.format(subject=table["rules"][rule]["subject"]) for t in table["templates"][rule]]


def test_instr_text_prompt_responds_exactly_where_the_rule_fires(recipes, clip_pools):
    recipe = recipes["instr_text_prompt"]
    table = recipe.offline_tables()["rules"]
    rules_seen = set()
    for i in range(N):
        plan = plan_for(recipe, clip_pools, f"tp-{i}")
        (name,) = [r for r in table["rules"] if plan.system_prompt in rule_prompts(table, r)]
        rules_seen.add(name)
        rule = table["rules"][name]
        kinds = set()
        for seg in plan.segments[1:]:
            (turn,) = turns_on(plan, seg)
            hit = fires(seg.clip["text"], rule["condition"], table["number_words"])
            kinds.add(bool(hit))
            last_word_end = seg.start_s + seg.clip["words"][-1]["end_s"]
            if hit:
                assert turn.kind == "respond" and turn.trigger_s == pytest.approx(last_word_end)
                if rule["reply"] == "response":
                    assert turn.text == seg.clip["response"]
                else:
                    assert all(h in turn.text.lower() for h in hit), (hit, turn.text)
            else:
                assert turn.kind == "stay_silent" and last_word_end <= turn.trigger_s <= last_word_end + 2.0
        assert kinds == {True, False}, "each episode has a firing and a non-firing utterance"
        assert episode_violations(to_row(recipe, plan)) == []
    assert len(rules_seen) >= 2


def test_instr_text_prompt_says_why_when_no_rule_can_fire(recipes, clip_pools):
    recipe = recipes["instr_text_prompt"]
    table = recipe.offline_tables()["rules"]
    quiet = [r for r in clip_pools["spoken"]
             if not any(fires(r["text"], rule["condition"], table["number_words"]) for rule in table["rules"].values())]
    with pytest.raises(PlanError, match="no rule .* can be both fired and not fired"):
        plan_for(recipe, clip_pools, "quiet", mapping={"questions": quiet, "noise": "noise"})


# ---------------------------------------------------------------- utterance summaries
class StubLLM:
    """Answers each summary request from a dict text -> answer (an LLMError is returned as is)."""

    def __init__(self, answers):
        from streamaudio.text.llm import LLMConfig

        self.answers, self.config = answers, LLMConfig(base_url="http://stub/v1", model="stub")

    def map_json(self, stage, reqs):
        assert stage == "summaries"
        out = []
        for messages, _ in reqs:
            text = messages[-1]["content"].split("TEXT: ", 1)[1]
            a = self.answers[text]
            out.append(a if isinstance(a, Exception) else {"summary": a})
        return out


def _env(llm, texts):
    import pyarrow as pa

    from streamaudio.text.tables import TableEnv

    clips = pa.Table.from_pylist([{"text": t, "language": "en"} for t in texts])
    return TableEnv(llm=llm, subtask="instr_task_switch", ability="instruction_following", description="",
                    folder=None, pools={"utterances": {"train": clips}})


def test_summaries_keep_checked_llm_answers_and_fall_back_per_utterance():
    from streamaudio.text.llm import LLMError
    from streamaudio.text.summaries import UtteranceSummaries, rule_summary, summary_of

    texts = {"The bridge was closed for repairs, so we drove around the lake all winter.": "Bridge closed; drove around the lake.",
             "My grandmother still writes letters by hand every single week.": "summary: My grandmother still writes letters by hand every single week",
             "We waited an hour for the next bus to the station.": "The weather was lovely.",
             "The river floods the meadows every spring, and the farmers move.": LLMError("invalid"),
             "He learned to swim when he was six.": "Learned to swim at six."}
    provider = UtteranceSummaries("instr/summary_rules.yaml", pool="utterances")
    res = provider.resolve(_env(StubLLM(texts), list(texts)))
    assert res.value["by_text"] == {"The bridge was closed for repairs, so we drove around the lake all winter.":
                                    "Bridge closed; drove around the lake.",
                                    "He learned to swim when he was six.": "Learned to swim at six."}
    assert res.report["llm"] == 2 and res.report["rule"] == 3 and res.writer == "llm:stub"
    assert res.report["fallback_reasons"] == {"longer than 10 words": 1, "shares no content word with the utterance": 1,
                                              "no valid answer": 1}
    rules = res.value["rules"]
    for t in texts:
        want = res.value["by_text"].get(t) or rule_summary(t, rules)
        assert summary_of(t, res.value) == want
    # an endpoint that does not answer: the rule for everything, and the note says so (exit 5 in a build)
    down = UtteranceSummaries("instr/summary_rules.yaml").resolve(
        _env(StubLLM({t: LLMError("timeout", transient=True) for t in texts}), list(texts)))
    assert down.value["by_text"] == {} and down.note.startswith("offline table (LLM failed")
    offline = UtteranceSummaries("instr/summary_rules.yaml").resolve(_env(None, list(texts)))
    assert offline.value["by_text"] == {} and offline.writer.startswith("rules:")


def test_summaries_with_the_dev_server_fall_back_and_rebuild_from_the_cache(tmp_path):
    from streamaudio.text.devserver import DevServer
    from streamaudio.text.llm import LLMClient, LLMConfig
    from streamaudio.text.summaries import UtteranceSummaries

    texts = ["The bridge was closed for repairs, so we drove around the lake all winter.",
             "OUR NEIGHBOUR WALKED SLOWLY TOWARD THE SHIP IN THE HARBOUR AND SAID NOTHING",
             "Short one."]
    with DevServer() as srv:
        cfg = LLMConfig(base_url=srv.base_url, model="dev-model", timeout_s=5.0)
        res = UtteranceSummaries("instr/summary_rules.yaml").resolve(_env(LLMClient(cfg, cache_dir=tmp_path), texts))
        first = srv.requests
        # the dev server's filler echoes the utterance: never shorter, so every summary is the rule's
        assert first == 2 and res.value["by_text"] == {} and res.report["rule"] == 2
        assert not res.note.startswith("offline table (LLM failed")
        again = UtteranceSummaries("instr/summary_rules.yaml").resolve(_env(LLMClient(cfg, cache_dir=tmp_path), texts))
        assert srv.requests == first and again.value == res.value


# ---------------------------------------------------------------- built episodes
def built_rows(built, subtask: str) -> list[dict]:
    """Every stored row of a sub-task in the demo build (skips when the demo has none)."""
    files = sorted((built["one"] / "data" / subtask).glob("*.parquet"))
    if not files:
        pytest.skip(f"{subtask} is not in the demo build")
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def _turns_on(row, i):
    return [t for t in row["turns"] if i in t["evidence"]]


@pytest.mark.parametrize("subtask", SUBTASKS)
def test_built_instr_episodes_keep_their_semantics(built, subtask):
    rows = built_rows(built, subtask)
    recipe = load_recipes()[subtask]
    tables = recipe.offline_tables()
    for row in rows:
        assert episode_violations(row) == []
        segs, turns = row["segments"], row["turns"]
        if subtask == "instr_spoken":
            ids = [s["clip_id"] for s in segs if s["role"] == "user"]
            assert sum(t["kind"] == "respond" for t in turns) == len(set(ids))
            for i, s in enumerate(segs):
                if s["role"] != "user":
                    continue
                on = _turns_on(row, i)
                later = [j for j in range(i + 1, len(segs)) if segs[j]["clip_id"] == s["clip_id"]]
                if later:  # the first part of a split request: silence in the pause
                    assert [t["kind"] for t in on] == ["stay_silent", "respond"]
                    assert s["words"][-1]["end_s"] <= on[0]["trigger_s"] < segs[later[0]]["start_s"]
                else:
                    assert on[-1]["kind"] == "respond" and on[-1]["trigger_s"] >= s["words"][-1]["end_s"] - 1e-3
        elif subtask == "instr_deferred_trigger":
            labels = tables["trigger"]["labels"]
            target, _ = deferred_target(segs, row["system_prompt"], labels)
            means = {target, *labels[target]["same_as"]}
            for i, s in ((i, s) for i, s in enumerate(segs[1:], 1) if not noise_track(s)):
                (t,) = _turns_on(row, i)
                hit = s["role"] == "environment" and bool(means & set(s["labels"]))
                assert t["kind"] == ("respond" if hit else "stay_silent")
        elif subtask == "instr_task_switch":
            task = None
            for i, s in ((i, s) for i, s in enumerate(segs[1:], 1) if not noise_track(s)):
                (t,) = _turns_on(row, i)
                assert t["kind"] == "respond"
                attrs = json.loads(s["attrs"])
                if s["corpus"] == "prompts":
                    slot = next(lab for lab in s["labels"] if "=" in lab)
                    task = "translate_to" if s["labels"][0] == "translate_to" else slot.split("=", 1)[1]
                    assert attrs["sets_task"] == task
                    continue
                assert attrs["task"] == task
                if task == "transcribe":
                    assert t["text"] == s["text"]
                elif task == "count_words":
                    assert re.findall(r"\d+", t["text"]) == [str(len(words(s["text"])))]
                else:
                    assert t["text"] != s["text"]
        else:
            table = tables["rules"]
            names = [r for r in table["rules"] if row["system_prompt"] in rule_prompts(table, r)]
            if not names:  # LLM-paraphrased prompts: the segments say which rule
                names = [json.loads(segs[1]["attrs"])["rule"]]
            rule = table["rules"][names[0]]
            for i, s in ((i, s) for i, s in enumerate(segs[1:], 1) if not noise_track(s)):
                (t,) = _turns_on(row, i)
                hit = bool(fires(s["text"], rule["condition"], table["number_words"]))
                assert t["kind"] == ("respond" if hit else "stay_silent"), (s["text"], names)
