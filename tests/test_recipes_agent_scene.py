"""agent_scene_qa and agent_addressee: the sub-tasks' semantics, checked on episode rows (format
v2 dicts). The same checks run on planned episodes (fixture clip pools, rendered in memory) and
on built ones (the demo build, once the sub-tasks are in manifests/demo.yaml)."""
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from streamaudio.build.shards import episode_row
from streamaudio.plan import PlanContext, Pool, episode_seed, load_recipes
from streamaudio.plan.store import plan_to_dict
from streamaudio.render.label import episode_violations
from conftest import due_after_last_word  # noqa: E402
from streamaudio.resources import MANIFESTS_DIR
from streamaudio.text.tables import TableEnv
from conftest import built_rows  # noqa: E402

SCENE, ADDRESSEE = "agent_scene_qa", "agent_addressee"
MAPPING = {SCENE: {"prompts": "prompts", "events": "sound", "noise": "noise"},
           ADDRESSEE: {"prompts": "prompts", "chat": "spoken", "other": "librispeech", "noise": "noise"}}
OUR_PROMPTS = {"scene_qa.yaml": "scene_question", "addressee.yaml": "address"}
N_EPISODES = 24
TOL = 1e-3
# what makes speech addressed to the assistant, as a listener hears it: the wake phrase first
WAKE = re.compile(r"^\W*(?:(?:hey|okay|ok)\W+)?assistant\b", re.IGNORECASE)


# ---------------------------------------------------------------- pools and planning
def speak_prompt_file(name: str, work: Path) -> list[dict]:
    """The rows of one spoken-prompts file, spoken in two voice slots as the fixture pools are."""
    import pyarrow.parquet as pq

    from streamaudio.sources import get_adapter, write_manifest
    from streamaudio.speech.espeak import load_voices
    from streamaudio.speech.spoken import pick_voice, speak_row

    res = write_manifest(get_adapter("prompts"), MANIFESTS_DIR / "spoken_prompts" / name, work / f"{name}.parquet",
                         {"voices": 2})
    voices = load_voices()
    return [speak_row(r, pick_voice(voices, r["split_group"]), work / "tts") for r in pq.read_table(res.path).to_pylist()]


@pytest.fixture(scope="module")
def pools(clip_pools, tmp_path_factory):
    """The fixture clip pools, with our spoken prompts in the prompts pool (spoken here when the
    fixture pools hold only the toolkit's en.yaml)."""
    out = dict(clip_pools)
    have = {(r.get("labels") or [""])[0] for r in out["prompts"]}
    work = tmp_path_factory.mktemp("scene_prompts")
    for name, intent in OUR_PROMPTS.items():
        if intent not in have:
            out["prompts"] = out["prompts"] + speak_prompt_file(name, work)
    return out


def plan_row(subtask: str, pools: dict, eid: str, seed: int = 7) -> dict:
    recipe = load_recipes()[subtask]
    ctx = PlanContext(episode_id=eid, subtask=subtask, split="train", rng=np.random.default_rng(episode_seed(seed, eid)),
                      pools={p: Pool(p, pools[s]) for p, s in MAPPING[subtask].items()}, tables=recipe.offline_tables())
    plan = recipe.plan(ctx)
    row = episode_row(json.loads(json.dumps(plan_to_dict(plan))), episode_id=eid, subtask=subtask,
                      ability=recipe.ability, split="train", recipe_version=recipe.version, seed=0, chunk_s=0.4)
    assert episode_violations(row) == []
    return row


@pytest.fixture(scope="module")
def scene_rows(pools):
    return [plan_row(SCENE, pools, f"scene-{i}") for i in range(N_EPISODES)]


@pytest.fixture(scope="module")
def addressee_rows(pools):
    return [plan_row(ADDRESSEE, pools, f"addr-{i}") for i in range(N_EPISODES)]




def attrs(seg: dict) -> dict:
    return json.loads(seg["attrs"] or "{}")


def last_word_end(seg: dict) -> float:
    return seg["words"][-1]["end_s"] if seg["words"] else seg["end_s"]


def matches_template(text: str, templates: list[str]) -> dict | None:
    """The placeholder values with which one of ``templates`` gives ``text`` (None: none does)."""
    for t in templates:
        parts = re.split(r"\{(\w+)\}", t)
        pattern = "".join(re.escape(p) if k % 2 == 0 else f"(?P<{p}>.+?)" for k, p in enumerate(parts))
        m = re.fullmatch(pattern, text, flags=re.IGNORECASE)  # the filled text starts with a capital
        if m:
            return m.groupdict()
    return None


# ---------------------------------------------------------------- agent_scene_qa
def scene_table() -> dict:
    return yaml.safe_load((MANIFESTS_DIR / "scene" / "scene_qa.yaml").read_text())


def check_scene_episode(row: dict, table: dict) -> list[tuple[str, str]]:
    """Every answer is decided by the sounds heard, as the table says; returns (intent, case)
    per round. Decided from the clips' labels, not from what the recipe wrote in attrs."""
    segs, turns = row["segments"], row["turns"]
    phrases, intents = table["labels"], table["intents"]
    env = [i for i, s in enumerate(segs) if s["role"] == "environment"]
    questions = [i for i, s in enumerate(segs) if s["role"] == "user"]
    answers = [t for t in turns if t["kind"] == "respond"]
    assert questions and len(answers) == len(questions) == len(turns)
    episode_labels = {lab for i in env for lab in segs[i]["labels"]}
    for i in env:  # only sounds the table can name: no hazard slipped into a scene
        assert segs[i]["kind"] == "sound" and set(segs[i]["labels"]) <= set(phrases), segs[i]["labels"]
    out, prev = [], -1.0
    for qi, ans in zip(questions, answers):
        q = segs[qi]
        assert q["kind"] == "speech" and q["labels"][0] == "scene_question"
        about = q["labels"][1].split("=", 1)[1]
        spec = intents[about]
        relevant = set(spec["labels"])
        scene = [i for i in env if prev < segs[i]["start_s"] <= q["start_s"]]
        prev = q["start_s"]
        assert scene, "every question follows a scene"
        # due when the question has been heard in full, and after every sound of its scene
        assert due_after_last_word(ans["trigger_s"], last_word_end(q))
        assert ans["evidence_s"] == pytest.approx(ans["trigger_s"], abs=TOL) and qi in ans["evidence"]
        for i in scene:
            assert json.loads(segs[i]["attrs"])["active_span_s"][1] <= ans["trigger_s"] + TOL
        for i in scene:  # a crying baby only where the question is about it
            if set(table["only_when_asked"]) & set(segs[i]["labels"]):
                assert relevant & set(segs[i]["labels"]), (about, segs[i]["labels"])
        heard = [i for i in scene if relevant & set(segs[i]["labels"])]
        case = "heard" if heard else "not_heard"
        filled = matches_template(ans["text"], table["templates"][f"{about}.{case}"])
        assert filled is not None, (about, case, ans["text"])  # the answer of the right polarity
        if heard:
            named = [i for i in heard if phrases[next(l for l in segs[i]["labels"] if l in phrases)] in filled["heard"]]
            assert named and set(named) <= set(ans["evidence"]), (ans["text"], ans["evidence"])
        else:
            assert not relevant & episode_labels, "a no is only true when the sound was never heard"
            assert set(scene) <= set(ans["evidence"])
            assert filled["absent"] == spec["absent"]
            for i in scene:  # it names what it heard instead
                assert phrases[next(l for l in segs[i]["labels"] if l in phrases)] in filled["scene"]
        assert attrs(q)["case"] == case and attrs(q)["answer"] == spec[case]
        out.append((about, case))
    return out


def test_scene_table_is_consistent():
    table = scene_table()
    prompts = yaml.safe_load((MANIFESTS_DIR / "spoken_prompts" / "scene_qa.yaml").read_text())
    asked = set(prompts["intents"]["scene_question"]["values"])
    assert asked == set(table["intents"])
    for intent, spec in table["intents"].items():
        assert set(spec["labels"]) <= set(table["labels"]), intent
        assert {spec["heard"], spec["not_heard"]} == {"yes", "no"}
        assert f"{intent}.heard" in table["templates"] and f"{intent}.not_heard" in table["templates"]
    recipe = load_recipes()[SCENE]
    recipe.offline_tables()  # AnswerTemplates checks every template's placeholders
    from streamaudio.fixtures.synth import EXTRA_LABELS, SOUND_CLASSES
    fixture = {c.display_name for c in SOUND_CLASSES} | {name for _, name in EXTRA_LABELS}
    assert set(table["labels"]) <= fixture, set(table["labels"]) - fixture  # spelled as AudioSet spells them


def test_scene_answers_follow_the_sounds_heard(scene_rows):
    table = scene_table()
    rounds = [r for row in scene_rows for r in check_scene_episode(row, table)]
    cases = {c for _, c in rounds}
    assert cases == {"heard", "not_heard"}, "both grounded yes/no cases occur"
    assert len({a for a, _ in rounds}) >= 5
    assert any(len([t for t in row["turns"] if t["kind"] == "respond"]) > 1 for row in scene_rows)


def test_scene_check_catches_a_wrong_answer(scene_rows):
    """The check is not vacuous: the same episode with the other case's answer fails it."""
    table = scene_table()
    row = json.loads(json.dumps(scene_rows[0], default=str))
    ans = next(t for t in row["turns"] if t["kind"] == "respond")
    q = next(s for s in row["segments"] if s["role"] == "user")
    about = q["labels"][1].split("=", 1)[1]
    case = attrs(q)["case"]
    other = "not_heard" if case == "heard" else "heard"
    ans["text"] = table["templates"][f"{about}.{other}"][0].format(heard="rain", absent=table["intents"][about]["absent"],
                                                                   scene="a fan humming")
    with pytest.raises(AssertionError):
        check_scene_episode(row, table)


def test_scene_llm_paraphrases_keep_the_grounding():
    """An LLM paraphrase that drops a placeholder (the sound heard) is not used."""
    recipe = load_recipes()[SCENE]
    provider = recipe.providers()["scene"]

    class FakeLLM:
        config = type("C", (), {"tag": "llm:fake"})()

        def map_json(self, stage, reqs):
            return [{"templates": ["Yes, it is {heard} all right.", "No need for anything.", "Sure, go ahead."]}
                    for _ in reqs]

    env = TableEnv(llm=FakeLLM(), subtask=SCENE, ability=recipe.ability, description="", folder=recipe.folder)
    res = provider.resolve(env)
    offline = provider.load(env)[0]["templates"]
    for key, items in res.value["templates"].items():
        added = items[len(offline[key]):]
        if key.endswith(".heard"):
            assert added == ["Yes, it is {heard} all right."]
        else:
            assert added == []  # {absent} and {scene} are not kept: the reviewed templates only


def test_built_scene_episodes(request):
    table = scene_table()
    rows = built_rows(request, SCENE)
    rounds = [r for row in rows for r in check_scene_episode(row, table)]
    assert {c for _, c in rounds} == {"heard", "not_heard"}


# ---------------------------------------------------------------- agent_addressee
def check_addressee_episode(row: dict) -> dict:
    """Only the user's speech that starts with the wake phrase gets a reply, due after its last
    word; every other utterance (other people, the user's side talk) has a stay_silent turn with
    it as evidence; the other speakers' voices differ from the user's. Returns counts."""
    segs, turns = row["segments"], row["turns"]
    speech = [i for i, s in enumerate(segs) if s["kind"] == "speech"]
    assert all(segs[i]["role"] in ("user", "other") for i in speech)
    user = [i for i in speech if segs[i]["role"] == "user"]
    other = [i for i in speech if segs[i]["role"] == "other"]
    user_voices = {attrs(segs[i])["speaker"] for i in user}
    other_voices = {attrs(segs[i])["speaker"] for i in other}
    assert len(user_voices) == 1 and other_voices and not user_voices & other_voices
    assert 1 <= len(other_voices) <= 2
    replies = [t for t in turns if t["kind"] == "respond"]
    silent = [t for t in turns if t["kind"] == "stay_silent"]
    answered = set()
    for t in replies:
        ev = sorted(t["evidence"])
        assert ev and all(segs[i]["role"] == "user" for i in ev), "never a reply to another person"
        # addressed: the evidence starts with the wake phrase (a wake segment, or the request itself)
        assert WAKE.match(segs[ev[0]]["text"]), segs[ev[0]]["text"]
        assert all(attrs(segs[i])["addressed"] for i in ev)
        assert due_after_last_word(t["trigger_s"], last_word_end(segs[ev[-1]]))
        answered |= set(ev)
    for i in user:  # every utterance that starts with the wake phrase is answered
        if WAKE.match(segs[i]["text"]):
            assert i in answered, segs[i]["text"]
    for i in speech:
        if i in answered:
            continue
        assert not WAKE.match(segs[i]["text"]) or segs[i]["role"] == "other"
        mine = [t for t in silent if t["evidence"] == [i]]
        assert mine, f"no stay_silent turn on {segs[i]['role']} speech {segs[i]['text']!r}"
        assert all(t["trigger_s"] >= last_word_end(segs[i]) - TOL for t in mine)
        assert not attrs(segs[i])["addressed"]
    side_talk = [i for i in user if i not in answered]
    return {"replies": len(replies), "side_talk": len(side_talk), "other": len(other),
            "recorded": sum(attrs(segs[i])["source"] == "recorded" for i in other),
            "synthetic": sum(attrs(segs[i])["source"] == "synthetic" for i in other),
            "chat": sum(attrs(segs[i])["source"] == "chat" for i in user),
            "wake_segments": sum(attrs(segs[i]).get("part") == "wake" for i in user)}


def test_addressee_prompts_carry_the_cue_and_only_there():
    doc = yaml.safe_load((MANIFESTS_DIR / "spoken_prompts" / "addressee.yaml").read_text())
    intents = doc["intents"]
    assert intents["address"]["values"] == intents["side_talk"]["values"]  # same requests, only the cue differs
    table = yaml.safe_load((MANIFESTS_DIR / "scene" / "addressee.yaml").read_text())
    assert set(intents["address"]["values"]) == set(table["templates"]) == set(table["facts"])
    for name, spec in intents.items():
        templates = spec["templates"] if isinstance(spec["templates"], list) else \
            [t for ts in spec["templates"].values() for t in ts]
        for words in spec["values"].values():
            for t in templates:
                text = t.format(**{spec["slot"]: words})
                assert bool(WAKE.match(text)) == (name in ("address", "address_wake")), text
    keeps_facts = sys.modules[load_recipes()[ADDRESSEE].plan.__module__].keeps_facts
    for key, items in table["templates"].items():  # the reviewed replies say their facts
        assert all(keeps_facts(t, table["facts"][key]) for t in items), key


def test_addressee_replies_only_to_the_user_addressing_it(addressee_rows):
    stats = [check_addressee_episode(row) for row in addressee_rows]
    total = {k: sum(s[k] for s in stats) for k in stats[0]}
    assert all(s["replies"] >= 1 and s["side_talk"] >= 1 for s in stats)
    # no trivial cue: other people are both recorded and synthetic voices, the user's requests and
    # side talk both come from the chat corpus as well as the prompts
    assert total["recorded"] and total["synthetic"] and total["chat"] and total["wake_segments"]


def test_addressee_check_catches_a_reply_to_someone_else(addressee_rows):
    row = json.loads(json.dumps(addressee_rows[0], default=str))
    i = next(k for k, s in enumerate(row["segments"]) if s["role"] == "other")
    row["turns"].append({"trigger_s": last_word_end(row["segments"][i]), "kind": "respond", "text": "Sure!",
                         "evidence": [i], "evidence_s": last_word_end(row["segments"][i])})
    with pytest.raises(AssertionError):
        check_addressee_episode(row)


def test_addressee_llm_replies_keep_their_facts():
    recipe = load_recipes()[ADDRESSEE]
    provider = recipe.providers()["replies"]

    class FakeLLM:
        config = type("C", (), {"tag": "llm:fake"})()

        def map_json(self, stage, reqs):
            return [{"templates": ["The capital is Canberra, and your timer for ten minutes is on the list with milk.",
                                   "Right away, all done for you."]} for _ in reqs]

    env = TableEnv(llm=FakeLLM(), subtask=ADDRESSEE, ability=recipe.ability, description="", folder=recipe.folder)
    res = provider.resolve(env)
    offline = provider.load(env)[0]["templates"]
    for key, items in res.value["templates"].items():
        added = items[len(offline[key]):]
        assert "Right away, all done for you." not in added  # says none of the facts
        assert bool(added) == (key in ("capital", "timer", "shopping")), (key, added)
    assert res.report["templates_dropped"]


def test_built_addressee_episodes(request):
    rows = built_rows(request, ADDRESSEE)
    stats = [check_addressee_episode(row) for row in rows]
    assert sum(s["replies"] for s in stats) and sum(s["other"] for s in stats)
