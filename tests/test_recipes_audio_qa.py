"""sound_event_narration and audio_qa: their semantics on planned episodes (fixture clip pools) and,
once the sub-tasks are in the demo catalog, on built episodes. Both run through one checker per
sub-task that reads episodes in the built format (segments with labels and attrs, turns with
evidence), so planned and built episodes are held to the same rules:

- narration: every event gets exactly one description, in time order, due 0.3-1.0 s after its
  active span ends, naming the phrase of one of the event's labels; replies >= 0.8 s apart;
- audio_qa: every answer matches the timeline heard before its question: yes/no (a "no" label and
  everything that might mean it absent from every placed clip), how long ago, counts (event
  segments carrying the label), the neighbour before/after (or none)."""
import json
import re
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from streamaudio.plan import PlanContext, Pool, episode_seed, load_recipes
from streamaudio.resources import MANIFESTS_DIR
from streamaudio.text.llm import LLMError
from streamaudio.text.tables import TableEnv
from conftest import built_rows  # noqa: E402

RECIPES = load_recipes()
NARRATION, QA = RECIPES["sound_event_narration"], RECIPES["audio_qa"]
SOUNDS = yaml.safe_load((MANIFESTS_DIR / "audio" / "narration.yaml").read_text())
ANSWERS = yaml.safe_load((MANIFESTS_DIR / "audio" / "qa_answers.yaml").read_text())
QUESTIONS = yaml.safe_load((MANIFESTS_DIR / "spoken_prompts" / "audio_qa.yaml").read_text())
NEGATIVE = re.compile(r"\b(no|not|never|nothing)\b|n't\b", re.IGNORECASE)


# ---------------------------------------------------------------- pools and plans
@pytest.fixture(scope="module")
def pools(clip_pools, tmp_path_factory):
    """The fixture pools, with the audio_qa questions spoken in the prompts pool (the fixture's
    prompts pool may hold only en.yaml)."""
    from streamaudio.sources import get_adapter, write_manifest
    from streamaudio.speech.espeak import load_voices
    from streamaudio.speech.spoken import pick_voice, speak_row

    work = tmp_path_factory.mktemp("qa_prompts")
    folder = work / "spoken_prompts"
    folder.mkdir()
    (folder / "audio_qa.yaml").write_text((MANIFESTS_DIR / "spoken_prompts" / "audio_qa.yaml").read_text())
    res = write_manifest(get_adapter("prompts"), folder, work / "p.parquet", {"voices": 2})
    voices = load_voices()
    have = {r["id"] for r in clip_pools["prompts"]}
    rows = [speak_row(r, pick_voice(voices, r["split_group"]), work / "tts")
            for r in pq.read_table(res.path).to_pylist() if r["id"] not in have]
    return {**clip_pools, "prompts": clip_pools["prompts"] + rows}


MAPPINGS = {"sound_event_narration": {"events": "sound", "noise": "noise"},
            "audio_qa": {"events": "sound", "prompts": "prompts", "noise": "noise"}}


def tables_for(recipe, pools, curated: bool):
    mapping = MAPPINGS[recipe.subtask]
    return recipe.offline_tables({p: {"train": pa.Table.from_pylist(pools[s])} for p, s in mapping.items()}
                                 if curated else None, seed=7)


def plan_for(recipe, pools, eid, tables, seed=7):
    mapping = MAPPINGS[recipe.subtask]
    ctx = PlanContext(episode_id=eid, subtask=recipe.subtask, split="train",
                      rng=np.random.default_rng(episode_seed(seed, eid)),
                      pools={p: Pool(p, pools[s]) for p, s in mapping.items()}, tables=tables)
    return recipe.plan(ctx)


def as_row(plan) -> dict:
    """A plan in the built episode's shape (segments with labels, attrs as JSON and words in
    episode time; turns with evidence indices and evidence_s), without rendering audio."""
    segs = []
    for s in plan.segments:
        avail = s.clip["duration_s"] - s.clip_start_s
        dur = avail if s.clip_dur_s is None else min(s.clip_dur_s, avail)
        words = [{"text": w["text"], "start_s": s.start_s + w["start_s"] - s.clip_start_s,
                  "end_s": s.start_s + w["end_s"] - s.clip_start_s} for w in s.clip.get("words") or []
                 if w["start_s"] >= s.clip_start_s - 1e-6 and w["end_s"] - s.clip_start_s <= dur + 1e-6]
        segs.append({"start_s": s.start_s, "end_s": s.start_s + dur, "kind": s.kind, "role": s.role,
                     "labels": list(s.labels if s.labels is not None else s.clip.get("labels") or []),
                     "attrs": json.dumps(s.attrs), "words": words, "clip_id": s.clip["id"]})
    turns = []
    for t in plan.turns:
        idx, ev = plan.evidence_of(t)
        turns.append({"trigger_s": t.trigger_s, "kind": t.kind, "text": t.text, "evidence": idx, "evidence_s": ev})
    return {"segments": segs, "turns": turns}




# ---------------------------------------------------------------- what the data should say
def phrases_of(labels: list[str]) -> set[str]:
    """Every phrase an event with these labels may be named by: a table phrase of one of its
    labels, or the generic phrase of its own name."""
    out = set()
    for lab in labels:
        if lab in SOUNDS["phrases"]:
            out.add(SOUNDS["phrases"][lab])
        else:
            name = lab.split(",")[0].strip().lower()
            out.add(SOUNDS["generic_phrase"].format(article="an" if name[0] in "aeiou" else "a", name=name))
    return out


def events_of(row) -> list[tuple[int, dict]]:
    return sorted(((i, s) for i, s in enumerate(row["segments"]) if s["role"] == "environment"),
                  key=lambda x: x[1]["start_s"])


def question_attrs(row, turn) -> dict:
    """The attrs of the question an answer rests on."""
    segs = row["segments"]
    return json.loads(next(segs[i]["attrs"] for i in turn["evidence"] if segs[i]["role"] == "user"))


def check_narration(row) -> list[str]:
    """Every way an episode breaks sound_event_narration's semantics."""
    bad = []
    events = events_of(row)
    replies = sorted((t for t in row["turns"] if t["kind"] == "respond"), key=lambda t: t["trigger_s"])
    if not 3 <= len(events) <= 6 or len(replies) != len(events):
        return [f"{len(events)} events, {len(replies)} descriptions"]
    if any(t["kind"] != "respond" for t in row["turns"]):
        bad.append("a stay_silent turn in a narration")
    for (i, ev), t in zip(events, replies):
        if t["evidence"] != [i]:
            bad.append(f"description {t['text']!r} rests on {t['evidence']}, not on event {i}")
        if set(ev["labels"]) & set(SOUNDS["never_events"]):
            bad.append(f"event {i} carries a never-event label: {ev['labels']}")
        if not any(p.lower() in t["text"].lower() for p in phrases_of(ev["labels"])):
            bad.append(f"{t['text']!r} names none of {sorted(phrases_of(ev['labels']))}")
        delay = t["trigger_s"] - t["evidence_s"]
        if not (ev["start_s"] < t["evidence_s"] <= ev["end_s"] + 1e-6 and 0.3 - 1e-6 <= delay <= 1.0 + 1e-6):
            bad.append(f"description of event {i} due at {t['trigger_s']:.2f}, "
                       f"its active span ended at {t['evidence_s']:.2f}")
    for a, b in zip(replies, replies[1:]):
        if b["trigger_s"] - a["trigger_s"] < 0.8 - 1e-6:
            bad.append(f"descriptions {a['trigger_s']:.2f} and {b['trigger_s']:.2f} closer than 0.8 s")
    return bad


def means(labels, label) -> bool:
    return bool(set(labels) & {label, *ANSWERS["labels"][label]["same_as"]})


def check_audio_qa(row) -> list[str]:
    """Every way an episode's answers disagree with its timeline; also returns nothing for an
    episode without questions (the caller checks that there are some)."""
    bad = []
    segs = row["segments"]
    counts = {int(k): v for k, v in ANSWERS["count_words"].items()}
    silent_at = {t["evidence"][0]: t["evidence_s"] for t in row["turns"] if t["kind"] == "stay_silent"}
    for i, ev in events_of(row):
        if i not in silent_at:
            bad.append(f"event {i} has no stay_silent turn")
        if set(ev["labels"]) & set(SOUNDS["never_events"]):
            bad.append(f"event {i} carries a never-event label: {ev['labels']}")
    for t in (t for t in row["turns"] if t["kind"] == "respond"):
        qs = [i for i in t["evidence"] if segs[i]["role"] == "user"]
        if len(qs) != 1:
            bad.append(f"answer {t['text']!r} rests on {len(qs)} questions")
            continue
        q = segs[qs[0]]
        attrs = json.loads(q["attrs"])
        label, kind, text = attrs["asked_label"], attrs["question"], t["text"]
        if f"label={label}" not in q["labels"] or attrs["intent"] not in q["labels"]:
            bad.append(f"the question's prompt {q['labels']} is not about {label!r}")
        if abs(t["trigger_s"] - q["words"][-1]["end_s"]) > 1e-3:  # built words are rounded
            bad.append(f"answer due at {t['trigger_s']:.2f}, "
                       f"the question's last word ends at {q['words'][-1]['end_s']:.2f}")
        heard = [(i, s) for i, s in events_of(row) if s["start_s"] < q["start_s"]]
        occ = [(i, s) for i, s in heard if means(s["labels"], label)]
        phrase = SOUNDS["phrases"][label]
        unsure = set(ANSWERS["labels"][label]["not_sure"])
        if any(set(s["labels"]) & unsure and not means(s["labels"], label) for _, s in heard):
            bad.append(f"asked about {label!r} while a clip that might be it was heard")
        if phrase.lower() not in text.lower():
            bad.append(f"{text!r} does not name {phrase!r}")
        if kind == "heard":
            if occ:
                if not re.match(r"yes\b", text, re.IGNORECASE) or NEGATIVE.search(text):
                    bad.append(f"{label!r} was heard {len(occ)} time(s) but the answer is {text!r}")
                if len(occ) > 1 and counts[len(occ)] not in text:
                    bad.append(f"{text!r} does not say {counts[len(occ)]!r}")
                m = re.search(r"(\d+) seconds|a second", text)
                ago = t["trigger_s"] - silent_at[occ[-1][0]]
                said = int(m.group(1)) if m and m.group(1) else 1
                if not m or abs(said - ago) > 1.0:
                    bad.append(f"{text!r}: the last {label!r} ended {ago:.1f} s before the answer")
            else:
                if re.search(r"\byes\b", text, re.IGNORECASE) or not NEGATIVE.search(text):
                    bad.append(f"{label!r} was not heard but the answer is {text!r}")
                # a true no: nothing placed carries the label, a label that means it or one that might
                maybe = {label, *ANSWERS["labels"][label]["same_as"], *unsure}
                for s in segs:
                    if s["role"] != "user" and set(s["labels"]) & maybe:
                        bad.append(f"'no' about {label!r}, but a placed clip carries {s['labels']}")
        elif kind == "count":
            if attrs["answer"]["count"] != len(occ):
                bad.append(f"attrs count {attrs['answer']['count']} for {len(occ)} segments of {label!r}")
            if occ and not re.search(rf"\b{counts[len(occ)]}\b", text):
                bad.append(f"{label!r} heard {len(occ)} times, answer {text!r}")
            said = re.sub(r"\bnot once\b", "", text, flags=re.IGNORECASE)  # "Not once" is a zero
            others = [w for k, w in counts.items() if k != len(occ) and re.search(rf"\b{w}\b", said)]
            if others or (not occ and not NEGATIVE.search(text)):
                bad.append(f"{label!r} heard {len(occ)} times, answer {text!r}")
        else:
            if len(occ) != 1:
                bad.append(f"an order question about {label!r}, heard {len(occ)} times")
                continue
            k = [i for i, _ in heard].index(occ[0][0]) + (-1 if kind == "before" else 1)
            neighbour = heard[k][1] if 0 <= k < len(heard) else None
            if neighbour is None:
                if not re.search(r"\bnothing\b", text, re.IGNORECASE):
                    bad.append(f"nothing {kind} {label!r}, answer {text!r}")
            elif not any(p.lower() in text.lower() for p in phrases_of(neighbour["labels"])):
                bad.append(f"{kind} {label!r} came {neighbour['labels']}, answer {text!r}")
            if (neighbour["clip_id"] if neighbour else None) != attrs["answer"]["neighbour_clip"]:
                bad.append(f"attrs neighbour {attrs['answer']['neighbour_clip']} is not the one heard")
    return bad


# ---------------------------------------------------------------- tables
def test_tables_agree_with_each_other():
    asked = set(ANSWERS["labels"])
    for intent, spec in QUESTIONS["intents"].items():
        assert set(spec["values"]) <= asked, intent  # every question names a label the answers know
    assert set(QUESTIONS["intents"]["heard_question"]["values"]) == asked
    for label in asked:
        assert label in SOUNDS["phrases"], label  # answers name it by a reviewed phrase
        assert label not in SOUNDS["never_events"]
    phrases = list(SOUNDS["phrases"].values())
    assert len(set(phrases)) == len(phrases)
    tables = QA.offline_tables()
    assert len(tables["instructions"]["system_prompts"]) >= 20
    assert len(NARRATION.offline_tables()["instructions"]["system_prompts"]) >= 20


def test_question_labels_cover_the_audioset_hierarchy():
    """Every ancestor of an askable label (AudioSet ontology) might mean it: not_sure; every
    descendant means it or might: same_as or not_sure. Otherwise a "no" could be wrong on real
    AudioSet, whose clips carry parent labels alone."""
    path = MANIFESTS_DIR / "audioset" / "ontology.json"
    if not path.is_file():
        pytest.skip("no AudioSet ontology in manifests/audioset")
    ontology = json.loads(path.read_text())
    by_id, by_name = {o["id"]: o for o in ontology}, {o["name"]: o for o in ontology}
    parents: dict = {}
    for o in ontology:
        for c in o.get("child_ids", []):
            parents.setdefault(c, []).append(o["id"])

    def walk(start, step):
        out, todo = set(), list(step(start))
        while todo:
            i = todo.pop()
            if i not in out:
                out.add(i)
                todo += step(i)
        return {by_id[i]["name"] for i in out}

    for label, entry in ANSWERS["labels"].items():
        assert label in by_name, label
        node = by_name[label]["id"]
        assert walk(node, lambda i: parents.get(i, [])) <= set(entry["not_sure"]), label
        below = walk(node, lambda i: by_id[i].get("child_ids", []))
        assert below <= set(entry["same_as"]) | set(entry["not_sure"]), label


# ---------------------------------------------------------------- sound_event_narration
@pytest.mark.parametrize("curated", [False, True])
def test_narration_describes_every_event_once_after_it_ends(pools, curated):
    tables = tables_for(NARRATION, pools, curated)
    if curated:
        assert tables["scenarios"]["by_split"]["train"], "curation kept no scenario"
    titles = set()
    for k in range(12):
        plan = plan_for(NARRATION, pools, f"nar-{curated}-{k}", tables)
        row = as_row(plan)
        assert check_narration(row) == []
        for s in plan.segments[1:]:  # due after the active span itself, not only after the evidence_s
            t = next(t for t in plan.turns if t.evidence == [s])
            active_end = s.start_s + s.clip["active_end_s"] - s.clip_start_s
            assert 0.3 - 1e-9 <= t.trigger_s - active_end <= 1.0 + 1e-9
            titles.add(s.attrs.get("scenario"))
    assert (None not in titles) == curated


def test_narration_checker_catches_a_wrong_description(pools):
    row = as_row(plan_for(NARRATION, pools, "nar-x", tables_for(NARRATION, pools, False)))
    reply = next(t for t in row["turns"] if t["kind"] == "respond")
    reply["text"] = "I just heard a spaceship landing."
    assert any("names none of" in b for b in check_narration(row))


class FakeLLM:
    """map_json answers from a function of the request's user text (no HTTP)."""

    def __init__(self, answer):
        self.answer, self.config, self.requests = answer, SimpleNamespace(tag="llm:fake"), []

    def map_json(self, stage, reqs):
        self.requests += reqs
        return [self.answer(msgs[-1]["content"]) for msgs, _ in reqs]


def env_for(recipe, llm, pools=None):
    return TableEnv(llm=llm, subtask=recipe.subtask, ability=recipe.ability, description=recipe.description,
                    folder=recipe.folder, pools=pools or {})


def test_narration_llm_descriptions_are_checked_and_fall_back_per_label_set(pools):
    events = {"train": pa.Table.from_pylist(pools["sound"])}

    def answer(user):
        phrase = re.search(r'exact words "([^"]+)"', user).group(1)
        if "Doorbell" in user:
            return LLMError("rate limited", transient=True)
        if "Knock" in user:  # nothing usable: no phrase, a question, two sentences
            return {"descriptions": ["A sound.", f"Was that {phrase}?", f"I heard {phrase}. It stopped."]}
        return {"descriptions": [f"Just now I heard {phrase} nearby.", f"descriptions: {phrase}", f"{phrase} here"]}

    llm = FakeLLM(answer)
    provider = NARRATION.providers()["narration"]
    res = provider.resolve(env_for(NARRATION, llm, {"events": events}))
    table = res.value
    assert res.writer == "llm:fake" and "LLM failed" in res.note
    assert len(llm.requests) == res.report["label_sets"] > 0
    keys = set(table["descriptions"])
    assert "Doorbell" not in keys and "Knock" not in keys and "Bark|Dog" in keys
    assert table["descriptions"]["Bark|Dog"] == ["Just now I heard a dog barking nearby."]
    assert not any(set(k.split("|")) & set(SOUNDS["never_events"]) for k in keys)  # hazards are not asked about
    # the planner uses the checked description where there is one, the templates elsewhere
    tables = {**tables_for(NARRATION, pools, False), "narration": table}
    for k in range(6):
        row = as_row(plan := plan_for(NARRATION, pools, f"nar-llm-{k}", tables))
        assert check_narration(row) == []
        for s in plan.segments[1:]:
            text = next(t.text for t in plan.turns if t.evidence == [s])
            if "|".join(sorted(set(s.clip["labels"]))) == "Bark|Dog":
                assert text == "Just now I heard a dog barking nearby."


def test_narration_with_the_dev_server_falls_back_to_templates(pools, tmp_path):
    from streamaudio.text.devserver import DevServer
    from streamaudio.text.llm import LLMClient, LLMConfig

    with DevServer() as srv:
        llm = LLMClient(LLMConfig(base_url=srv.base_url, model="dev-model", timeout_s=2.0), cache_dir=tmp_path)
        events = {"events": {"train": pa.Table.from_pylist(pools["sound"])}}
        res = NARRATION.providers()["narration"].resolve(env_for(NARRATION, llm, events))
    assert res.value["descriptions"] == {} and res.writer == "table"  # filler text never passes the checks
    assert res.report["template_label_sets"] == res.report["label_sets"] > 0


# ---------------------------------------------------------------- audio_qa
def test_audio_qa_answers_match_the_timeline(pools):
    tables = tables_for(QA, pools, False)
    seen = {"yes": 0, "no": 0, "before": 0, "after": 0, "nothing": 0, "count": 0, "count_many": 0, "listing": 0}
    for k in range(60):
        row = as_row(plan_for(QA, pools, f"qa-{k}", tables))
        assert check_audio_qa(row) == [], k
        answers = [t for t in row["turns"] if t["kind"] == "respond"]
        assert 1 <= len(answers) <= 3
        for t in answers:
            q = question_attrs(row, t)
            a = q["answer"]
            if q["question"] == "heard":
                seen["yes" if a["heard"] else "no"] += 1
                seen["listing"] += a["answer_key"] == "heard_no_listing"
            elif q["question"] == "count":
                seen["count"] += 1
                seen["count_many"] += a["count"] > 1
            else:
                seen[q["question"]] += 1
                seen["nothing"] += a["neighbour_clip"] is None
    assert all(v > 0 for v in seen.values()), seen
    assert 0.3 < seen["yes"] / (seen["yes"] + seen["no"]) < 0.7, seen  # yes and no about equally often


def test_audio_qa_checker_catches_wrong_answers(pools):
    tables = tables_for(QA, pools, False)
    caught = set()
    for k in range(30):
        row = as_row(plan_for(QA, pools, f"qa-{k}", tables))
        for t in (t for t in row["turns"] if t["kind"] == "respond"):
            q = question_attrs(row, t)
            phrase, kind = q["asked_phrase"], q["question"]
            if kind == "heard":  # flip the answer
                wrong = (f"No, I didn't hear {phrase}." if q["answer"]["heard"] else
                         f"Yes, I heard {phrase} about 3 seconds ago.")
            elif kind == "count":
                wrong = f"I heard {phrase} {'six times' if q['answer']['count'] != 6 else 'once'}."
            else:  # another neighbour: the asked sound itself
                wrong = f"Right {kind} {phrase}, I heard {phrase}."
            good = t["text"]
            t["text"] = wrong
            assert check_audio_qa(row), (kind, good, wrong)
            t["text"] = good
            caught.add(kind)
    assert caught == {"heard", "count", "before", "after"}


def test_audio_qa_never_says_no_about_a_sound_that_might_have_been_heard(pools):
    """A "no" while a clip that might be the sound (a parent label) is in the stream is caught."""
    tables = tables_for(QA, pools, False)
    for k in range(60):
        plan = plan_for(QA, pools, f"qa-{k}", tables)
        row = as_row(plan)
        for t in (t for t in row["turns"] if t["kind"] == "respond"):
            q = next(row["segments"][i] for i in t["evidence"] if row["segments"][i]["role"] == "user")
            a = json.loads(q["attrs"])
            if a["question"] == "heard" and not a["answer"]["heard"]:
                unsure = ANSWERS["labels"][a["asked_label"]]["not_sure"]
                if not unsure:
                    continue
                ev = next(s for s in row["segments"] if s["role"] == "environment")
                ev["labels"] = ev["labels"] + [unsure[0]]
                assert any("might be it" in b or "placed clip carries" in b for b in check_audio_qa(row))
                return
    pytest.fail("no 'no' answer about a label with not_sure labels in 60 episodes")


def test_fact_checked_answers_drop_paraphrases_that_change_the_facts():
    def answer(user):
        if "answer yes" in user and "heard once" in user:
            return {"templates": ["No, {phrase} was heard {ago} ago.", "Yes indeed, {phrase} about {ago} ago.",
                                  "Yes, {phrase}."]}
        if "how many times" in user and "not at all" not in user:
            return {"templates": ["I heard {phrase} {count}, once more.", "{phrase}, {count} in all.",
                                  "Counted {phrase}: {count}."]}
        return LLMError("no answer")

    res = QA.providers()["answers"].resolve(env_for(QA, FakeLLM(answer)))
    t = res.value["templates"]
    own = yaml.safe_load((MANIFESTS_DIR / "audio" / "qa_answers.yaml").read_text())["templates"]
    # "Yes, {phrase}." drops {ago}: AnswerTemplates' placeholder check; "No, ..." flips the fact
    assert t["heard_yes_once"] == own["heard_yes_once"] + ["Yes indeed, {phrase} about {ago} ago."]
    assert t["count"] == own["count"] + ["{phrase}, {count} in all.", "Counted {phrase}: {count}."]
    assert t["heard_no"] == own["heard_no"]
    assert res.writer == "llm:fake" and res.report["fact_rejected"] == {"count": 1, "heard_yes_once": 1}


def test_a_reviewed_template_that_breaks_its_facts_rule_is_an_error(tmp_path):
    cls = type(QA.providers()["answers"])
    table = yaml.safe_load((MANIFESTS_DIR / "audio" / "qa_answers.yaml").read_text())
    (tmp_path / "qa.yaml").write_text(yaml.safe_dump(table))
    cls("qa.yaml").load(TableEnv(llm=None, subtask="audio_qa", ability="audio_understanding", description="",
                                 folder=tmp_path))  # the reviewed table passes
    table["templates"]["before"].append("Just after {phrase}, I heard {neighbour}.")
    (tmp_path / "qa.yaml").write_text(yaml.safe_dump(table))
    with pytest.raises(ValueError, match="facts rule"):
        cls("qa.yaml").load(TableEnv(llm=None, subtask="audio_qa", ability="audio_understanding", description="",
                                     folder=tmp_path))


# ---------------------------------------------------------------- built episodes (demo catalog)
def test_built_narration_episodes(request):
    rows = built_rows(request, "sound_event_narration")
    for r in rows:
        assert check_narration(r) == [], r["id"]


def test_built_audio_qa_episodes(request):
    rows = built_rows(request, "audio_qa")
    kinds = set()
    for r in rows:
        assert check_audio_qa(r) == [], r["id"]
        for s in r["segments"]:
            if s["role"] == "user":
                a = json.loads(s["attrs"])
                kinds.add("yes" if a["question"] == "heard" and a["answer"]["heard"] else
                          "no" if a["question"] == "heard" else a["question"])
    assert {"yes", "no"} <= kinds, kinds  # both a yes and a true no in the demo
