"""The voice_chatting recipes chat_multi_turn, chat_history_review and chat_sound_aware: what
each episode must mean (checked on planned episodes from the fixture pools, and on the built
demo's stored rows), the AnswerTemplates provider (with a fake LLM and with the devserver) and
the pools' indexed lookup by column value."""
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
import yaml

from streamaudio.build.shards import episode_row
from streamaudio.plan import PlanContext, PlanError, Pool, episode_seed, load_recipes
from streamaudio.plan.store import plan_to_dict
from streamaudio.render.label import episode_violations
from conftest import due_after_last_word  # noqa: E402
from conftest import built_rows  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TOL = 2e-3  # stored times are rounded to 0.1 ms; segments are placed on samples

MAPPING = {"chat_multi_turn": {"speech": "spoken", "noise": "noise"},
           "chat_history_review": {"speech": "spoken", "prompts": "prompts", "events": "sound", "noise": "noise"},
           "chat_sound_aware": {"prompts": "prompts", "music": "music", "events": "sound", "noise": "noise"}}


@pytest.fixture(scope="module")
def recipes():
    return load_recipes()


def manifest(rel: str) -> dict:
    return yaml.safe_load((REPO / "manifests" / rel).read_text())


PACING, PHRASES = manifest("chat/pacing.yaml"), manifest("chat/sound_phrases.yaml")
NUMBER_WORDS = manifest("chat/history_review.yaml")["number_words"]


def plan_row(recipe, pools, eid, mapping=None, seed=7):
    """(plan, format v2 row) of one planned episode on the fixture pools; the row keeps every rule."""
    mapping = mapping or MAPPING[recipe.subtask]
    ctx = PlanContext(episode_id=eid, subtask=recipe.subtask, split="train",
                      rng=np.random.default_rng(episode_seed(seed, eid)),
                      pools={p: Pool(p, pools[s]) for p, s in mapping.items()}, tables=recipe.offline_tables())
    plan = recipe.plan(ctx)
    row = episode_row(json.loads(json.dumps(plan_to_dict(plan))), episode_id=eid, subtask=recipe.subtask,
                      ability=recipe.ability, split="train", recipe_version=recipe.version, seed=0, chunk_s=0.4)
    assert episode_violations(row) == [], eid
    return plan, row


# ---------------------------------------------------------------- what the rows must mean
def attrs(seg: dict) -> dict:
    return json.loads(seg["attrs"])


def norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def user_turns(row) -> dict[tuple, list[int]]:
    """(dialogue, turn) -> indices of the segments that say it (two for a turn with a pause)."""
    out: dict[tuple, list[int]] = {}
    for i, s in enumerate(row["segments"]):
        a = attrs(s)
        if s["kind"] == "speech" and s["role"] == "user" and "dialogue" in a:
            out.setdefault((a["dialogue"], a["turn"]), []).append(i)
    return dict(sorted(out.items(), key=lambda kv: row["segments"][kv[1][0]]["start_s"]))


def last_word(row, i) -> float:
    return row["segments"][i]["words"][-1]["end_s"]


def first_word(row, i) -> float:
    return row["segments"][i]["words"][0]["start_s"]


def expected_gap(reply: str) -> float:
    """How long saying the reply takes, bounded: words at words_per_s (CJK characters, written
    without spaces, as half a word each)."""
    lo, hi = PACING["reply_gap_s"]
    cjk = re.findall(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]", reply)
    words = len(re.sub(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]", " ", reply).split()) + len(cjk) / 2
    return min(hi, max(lo, words / PACING["words_per_s"]))


def check_conversation(row, source: dict | None = None) -> dict:
    """The user turns of a conversation: each answered with its reply when its last word ends
    (never while it is still being said), a stay_silent turn at every mid-turn pause, the next
    turn about as long after as the reply takes to say. Returns what it saw."""
    segs, turns = row["segments"], row["turns"]
    ut = user_turns(row)
    respond = [t for t in turns if t["kind"] == "respond"]
    replies = []
    for key, idx in ut.items():
        mine = [t for t in respond if set(t["evidence"]) == set(idx)]
        assert len(mine) == 1, (key, idx)
        reply = mine[0]
        # due when the turn's last word ends: after every word of every part of it
        assert due_after_last_word(reply["trigger_s"], last_word(row, idx[-1]))
        assert all(reply["trigger_s"] >= w["end_s"] - TOL for i in idx for w in segs[i]["words"])
        if source is not None:
            assert reply["text"] == source[segs[idx[0]]["clip_id"]]["response"]
        replies.append(reply)
    spans = [(first_word(row, idx[0]), last_word(row, idx[-1])) for idx in ut.values()]
    for t in respond:  # nothing is answered while a user turn is still being said
        assert not any(a + TOL < t["trigger_s"] < b - TOL for a, b in spans), t
    silent = [t for t in turns if t["kind"] == "stay_silent" and all(segs[i]["role"] == "user" for i in t["evidence"])]
    paused = [idx for idx in ut.values() if len(idx) == 2]
    assert all(len(idx) <= 2 for idx in ut.values())
    for first, second in paused:
        assert segs[first]["clip_id"] == segs[second]["clip_id"]
        (st,) = [t for t in silent if t["evidence"] == [first]]
        # in the pause: after the first part's last word, before the second part's first
        assert last_word(row, first) - TOL <= st["trigger_s"] < first_word(row, second)
        assert first_word(row, second) - last_word(row, first) >= PACING["pause"]["pause_s"][0] - TOL
    assert len(silent) == len(paused)
    gaps = []
    keys = list(ut)
    for k in range(len(keys) - 1):
        nxt = ut[keys[k + 1]][0]
        # the recipe paces from the reply's planned time, its turn's last word; the renderer then
        # settles the reply where the turn stops being heard (evidence_s), a little later
        planned = replies[k]["trigger_s"] - (replies[k]["evidence_s"] - last_word(row, ut[keys[k]][-1]))
        gap = first_word(row, nxt) - planned
        want = expected_gap(replies[k]["text"])
        assert gap >= want - TOL
        forced = abs(segs[nxt]["start_s"] - (segs[ut[keys[k]][-1]]["end_s"] + PACING["min_clip_gap_s"])) < TOL
        events = [s for s in segs if s["kind"] == "sound" and planned < s["start_s"] < segs[nxt]["start_s"]]
        if not forced and not events:
            assert gap == pytest.approx(want, abs=TOL)
            gaps.append((len(replies[k]["text"].split()), gap))
    return {"turns": ut, "replies": replies, "paused": len(paused), "gaps": gaps}


def check_multi_turn(row, source: dict | None = None) -> dict:
    seen = check_conversation(row, source)
    ut = seen["turns"]
    assert len({d for d, _ in ut}) == 1, "one dialogue"
    assert [t for _, t in ut] == list(range(len(ut))), "its turns from the first, in order"
    assert 2 <= len(ut) <= PACING["multi_turn"]["turns"][1]
    voices = {attrs(row["segments"][i])["speaker"] for idx in ut.values() for i in idx}
    assert len(voices) == 1, voices
    assert all(row["segments"][i]["kind"] != "speech" or row["segments"][i]["role"] == "user"
               for i in range(len(row["segments"])))
    return seen


def phrase_of(labels: list[str]) -> str:
    return next(PHRASES["labels"][lab] for lab in labels if lab in PHRASES["labels"])


def check_history_review(row) -> str:
    segs = row["segments"]
    speech = sorted((i for i, s in enumerate(segs) if s["kind"] == "speech"), key=lambda i: segs[i]["start_s"])
    q = speech[-1]
    assert segs[q]["labels"][0] == "history_question" and segs[q]["role"] == "user"
    about = segs[q]["labels"][1].split("=", 1)[1]
    assert attrs(segs[q])["about"] == about
    assert all(segs[i]["end_s"] <= segs[q]["start_s"] + TOL for i in speech[:-1]), "the question is the last speech"
    seen = check_conversation(row)  # the earlier turns get their normal replies
    ut = seen["turns"]
    answer = max(row["turns"], key=lambda t: t["trigger_s"])
    assert answer["kind"] == "respond" and q in answer["evidence"]
    assert due_after_last_word(answer["trigger_s"], last_word(row, q))
    text = answer["text"]
    keys = list(ut)
    after = PACING["history_review"]["min_turns_after"]
    if about == "first_request":
        first = ut[keys[0]]
        assert set(first) <= set(answer["evidence"])
        said = " ".join(segs[i]["text"] for i in first)
        assert norm(said) in norm(text), (said, text)
        earlier_end = segs[first[-1]]["end_s"]
        assert len(keys) - 1 >= after
    elif about == "earlier_sound":
        (ev,) = [i for i in answer["evidence"] if segs[i]["kind"] == "sound"]
        assert phrase_of(segs[ev]["labels"]) in text
        earlier_end = segs[ev]["end_s"]
        assert sum(segs[idx[0]]["start_s"] > earlier_end for idx in ut.values()) >= after
    else:
        assert about == "request_count"
        n = len(ut)
        assert {i for idx in ut.values() for i in idx} <= set(answer["evidence"])
        assert re.search(rf"\b({NUMBER_WORDS[n]}|{n})\b", text), (n, text)
        earlier_end = segs[ut[keys[0]][-1]]["end_s"]
    # late: well after what it asks about, with other turns between
    assert segs[q]["start_s"] - earlier_end >= 4.0
    return about


def check_sound_aware(row) -> list[str]:
    segs = row["segments"]
    abouts = []
    respond = [t for t in row["turns"] if t["kind"] == "respond"]
    assert respond and len(respond) == sum(s["kind"] == "speech" for s in segs)
    for t in respond:
        (q,) = [i for i in t["evidence"] if segs[i]["kind"] == "speech"]
        (heard,) = [i for i in t["evidence"] if segs[i]["kind"] in ("music", "sound")]
        assert segs[q]["labels"][0] == "sound_question" and segs[q]["role"] == "user"
        assert due_after_last_word(t["trigger_s"], last_word(row, q))
        about = segs[q]["labels"][1].split("=", 1)[1]
        a, text = attrs(segs[heard]), t["text"]
        if about == "sound_event":
            assert segs[heard]["kind"] == "sound"
            assert phrase_of(segs[heard]["labels"]) in text
            # asked after the event's active span has ended
            assert first_word(row, q) >= a["active_span_s"][1] - TOL
        else:
            assert segs[heard]["kind"] == "music"
            # the music plays under the question
            assert segs[heard]["start_s"] < first_word(row, q) < segs[heard]["end_s"]
            if about == "music_genre":
                assert segs[heard]["labels"][0].lower() in text.lower()
            else:
                assert about == "music_tempo"
                bpm = a["tempo_bpm"]
                band = next(b["phrase"] for b in PHRASES["tempo_bands"] if bpm < b["below_bpm"])
                assert band in text and str(round(bpm)) in text
        abouts.append(about)
    return abouts


# ---------------------------------------------------------------- planned episodes
def test_multi_turn_answers_each_turn_of_one_dialogue_in_one_voice(recipes, clip_pools):
    recipe = recipes["chat_multi_turn"]
    source = {r["id"]: r for r in clip_pools["spoken"]}
    by_dialogue = {}
    for r in clip_pools["spoken"]:
        by_dialogue.setdefault(r["dialogue"], []).append(r)
    longest = max(len(v) for v in by_dialogue.values())
    assert longest >= 3  # the fixture has 3-turn dialogues: every episode must use one
    paused, gaps = 0, []
    for i in range(12):
        plan, row = plan_row(recipe, clip_pools, f"mt-{i}")
        seen = check_multi_turn(row, source)
        (dialogue,) = {d for d, _ in seen["turns"]}
        assert len(seen["turns"]) == len(by_dialogue[dialogue]) >= 3  # every turn of it
        # the replies are the source's, in turn order
        in_order = sorted(by_dialogue[dialogue], key=lambda r: r["turn"])
        assert [t["text"] for t in seen["replies"]] == [r["response"] for r in in_order]
        assert {s.clip["speaker"] for s in plan.segments if s.kind == "speech"} == {by_dialogue[dialogue][0]["speaker"]}
        paused += seen["paused"]
        gaps += seen["gaps"]
    assert paused >= 2  # comprehension-aware silence happens
    assert gaps  # each one as long as its reply takes to say (check_conversation)


def test_multi_turn_takes_two_turn_dialogues_only_when_no_longer_one_exists(recipes, clip_pools):
    recipe = recipes["chat_multi_turn"]
    rows = clip_pools["spoken"]
    turns_of = {}
    for r in rows:
        turns_of[r["dialogue"]] = turns_of.get(r["dialogue"], 0) + 1
    short = [r for r in rows if turns_of[r["dialogue"]] <= 2]
    assert any(turns_of[r["dialogue"]] == 2 for r in short)
    for i in range(4):
        _, row = plan_row(recipe, {**clip_pools, "short": short}, f"short-{i}", mapping={"speech": "short", "noise": "noise"})
        assert len(check_multi_turn(row)["turns"]) == 2
    from streamaudio.plan import PlanError

    singles = [r for r in rows if turns_of[r["dialogue"]] == 1]
    with pytest.raises(PlanError, match="no dialogue with 2 or more"):
        plan_row(recipe, {**clip_pools, "single": singles}, "single", mapping={"speech": "single", "noise": "noise"})


def test_history_review_answers_a_late_question_from_earlier_content(recipes, clip_pools):
    recipe = recipes["chat_history_review"]
    voices = {r["speaker"] for r in clip_pools["prompts"]}
    abouts, matched, gaps = set(), 0, []
    for i in range(30):
        plan, row = plan_row(recipe, clip_pools, f"hr-{i}")
        abouts.add(check_history_review(row))
        gaps += check_conversation(row)["gaps"]
        q = max((s for s in plan.segments if s.kind == "speech"), key=lambda s: s.start_s)
        first_voice = min((s for s in plan.segments if s.kind == "speech"), key=lambda s: s.start_s).clip["speaker"]
        # the question is in the first request's voice whenever the prompts have that voice
        if first_voice in voices:
            assert q.clip["speaker"] == first_voice and q.attrs["prompt_voice"] == "user"
            matched += 1
        else:
            assert q.attrs["prompt_voice"] == "other"
        if q.attrs["about"] == "first_request":  # quotes the request as the source has it
            first = min((s for s in plan.segments if s.kind == "speech"), key=lambda s: s.start_s)
            assert first.clip["text"] in plan.turns[-1].text
    assert abouts == {"first_request", "earlier_sound", "request_count"}
    words, secs = np.array(gaps).T
    assert len(set(words)) > 5 and np.corrcoef(words, secs)[0, 1] > 0.8  # longer replies, longer waits


def test_history_review_asks_in_the_users_voice_when_it_can(recipes, clip_pools):
    recipe = recipes["chat_history_review"]
    by_dialogue = {}
    for r in clip_pools["spoken"]:
        by_dialogue.setdefault(r["dialogue"], []).append(r)
    user = max(by_dialogue.values(), key=len)[0]["speaker"]  # the one 3-turn dialogue opens every stream
    # the prompts of voice slot 0 re-voiced as that user: a prompt pool with the user's voice
    prompts = [{**r, "speaker": user} if r["id"].endswith("#voice=0") else r for r in clip_pools["prompts"]]
    assert user not in {r["speaker"] for r in clip_pools["prompts"]}
    mapping = {**MAPPING["chat_history_review"], "prompts": "revoiced"}
    for i in range(8):
        plan, row = plan_row(recipe, {**clip_pools, "revoiced": prompts}, f"hr-voice-{i}", mapping=mapping)
        check_history_review(row)
        speech = sorted((s for s in plan.segments if s.kind == "speech"), key=lambda s: s.start_s)
        assert speech[0].clip["speaker"] == user
        assert speech[-1].clip["speaker"] == user and speech[-1].attrs["prompt_voice"] == "user"


def test_history_review_without_an_events_pool_never_asks_about_a_sound(recipes, clip_pools):
    recipe = recipes["chat_history_review"]
    mapping = {k: v for k, v in MAPPING["chat_history_review"].items() if k != "events"}
    for i in range(8):
        plan, row = plan_row(recipe, clip_pools, f"hr-noev-{i}", mapping=mapping)
        assert check_history_review(row) != "earlier_sound"
        assert not any(s.kind == "sound" for s in plan.segments)


def test_sound_aware_answers_are_grounded_in_the_clip(recipes, clip_pools):
    recipe = recipes["chat_sound_aware"]
    abouts = []
    for i in range(16):
        plan, row = plan_row(recipe, clip_pools, f"sa-{i}")
        abouts += check_sound_aware(row)
        for s in plan.segments:  # what the row says about the clip is the clip's
            if s.kind == "music":
                meta = json.loads(s.clip["attrs"])
                assert s.attrs["genre_top"] == meta["genre_top"] == s.clip["labels"][0]
                assert s.attrs.get("tempo_bpm") == (round(meta["tempo"], 1) if meta.get("tempo") else None)
            if s.kind == "sound":
                span = s.attrs["active_span_s"]
                assert span[1] - span[0] == pytest.approx(s.clip["active_end_s"] - s.clip["active_start_s"], abs=1e-3)
                assert s.attrs["named_label"] in s.clip["labels"]
    assert set(abouts) == {"music_genre", "music_tempo", "sound_event"}
    assert max(abouts.count(a) for a in set(abouts)) < len(abouts)


@pytest.mark.parametrize("only", ["music", "events"])
def test_sound_aware_works_with_either_pool_alone(recipes, clip_pools, only):
    recipe = recipes["chat_sound_aware"]
    mapping = {k: v for k, v in MAPPING["chat_sound_aware"].items() if k not in ({"music", "events"} - {only})}
    for i in range(4):
        plan, row = plan_row(recipe, clip_pools, f"sa-{only}-{i}", mapping=mapping)
        kinds = {s.kind for s in plan.segments if s.role == "environment"}
        assert kinds == {"music" if only == "music" else "sound"}
        check_sound_aware(row)


def test_sound_aware_asks_while_the_music_still_plays(recipes, clip_pools):
    """A music clip too short to ask about while it plays (a 0.3 s pluck, as real catalogs
    hold) is never drawn; with only such clips the episode is a PlanError that says so."""
    recipe = recipes["chat_sound_aware"]
    mapping = {k: v for k, v in MAPPING["chat_sound_aware"].items() if k != "events"}
    pools = dict(clip_pools)
    short = [{**r, "id": r["id"] + "-short", "duration_s": 0.3} for r in clip_pools["music"]]
    pools["music"] = clip_pools["music"] + short
    for i in range(6):
        plan, _ = plan_row(recipe, pools, f"sa-short-{i}", mapping=mapping)
        for seg in (s for s in plan.segments if s.kind == "music"):
            q = next(s for s in plan.segments if s.kind == "speech" and s.start_s > seg.start_s)
            assert seg.clip["duration_s"] >= 2.0 and q.start_s < seg.start_s + seg.clip["duration_s"]
    pools["music"] = short
    with pytest.raises(PlanError, match="no music clip of 2.0 s or more"):
        plan_row(recipe, pools, "sa-short-only", mapping=mapping)


# ---------------------------------------------------------------- the built demo


@pytest.mark.parametrize("subtask", sorted(MAPPING))
def test_built_chat_episodes_keep_their_meaning(request, subtask):
    rows = built_rows(request, subtask)
    seen = set()
    for row in rows:
        assert episode_violations(row) == []
        if subtask == "chat_multi_turn":
            check_multi_turn(row)
            seen.add(len(user_turns(row)))
        elif subtask == "chat_history_review":
            seen.add(check_history_review(row))
        else:
            seen.update(check_sound_aware(row))
    assert seen


# ---------------------------------------------------------------- AnswerTemplates
def templates_env(llm, folder=None):
    from streamaudio.text.tables import TableEnv

    return TableEnv(llm=llm, subtask="chat_history_review", ability="voice_chatting", description="d", folder=folder)


class FakeLLM:
    """map_json answers from a function of (key, request); every call is recorded."""

    def __init__(self, answer):
        self.answer, self.calls = answer, []
        self.config = SimpleNamespace(tag="llm:fake")

    def map_json(self, stage, requests):
        self.calls.append((stage, requests))
        return [self.answer(req) for req in requests]


def test_answer_templates_keep_valid_paraphrases_and_fall_back_per_key(tmp_path):
    from streamaudio.text.llm import LLMError
    from streamaudio.text.templates import AnswerTemplates

    (tmp_path / "t.yaml").write_text(yaml.safe_dump({
        "about": {"sound": "names the sound"},
        "templates": {"sound": ["That was {sound}.", "I heard {sound}."],
                      "count": ["You asked {count} things."],
                      "quote": ['You asked: "{request}"'],
                      "flaky": ["Flaky {x} answer."]},
        "number_words": ["zero", "one"]}))
    provider = AnswerTemplates("t.yaml", n=4)
    offline = provider.resolve(templates_env(None, tmp_path))
    assert offline.writer == "table" and offline.value["number_words"] == ["zero", "one"]

    def answer(req):
        user = req[0][-1]["content"]
        assert req[1]["properties"]["templates"]["minItems"] == 4
        if "{sound}" in user:
            assert "names the sound" in user  # the table's own description of the answer
            return {"templates": ["It sounded like {sound} to me.", "That was {sound}.",  # a repeat
                                  "It was {noise}.", "Heard {sound} {sound}, twice said."]}
        if "{count}" in user:
            return {"templates": ["You asked {count:>3} things.", "You asked {0} things.", "{count}", "Count {count"]}
        if "{request}" in user:
            return LLMError("answer_templates: reply still invalid after 2 repair(s)")
        return LLMError("answer_templates: gave up after 6 attempts: 429 rate limited", transient=True)

    llm = FakeLLM(answer)
    res = provider.resolve(templates_env(llm, tmp_path))
    ((stage, reqs),) = llm.calls
    assert stage == "answer_templates" and len(reqs) == 4  # one request per key
    t = res.value["templates"]
    # valid paraphrases are appended to the hand-written ones; the rest are dropped
    assert t["sound"] == ["That was {sound}.", "I heard {sound}.", "It sounded like {sound} to me.",
                          "Heard {sound} {sound}, twice said."]
    assert t["count"] == offline.value["templates"]["count"] and t["quote"] == offline.value["templates"]["quote"]
    assert res.writer == "llm:fake" and res.value["number_words"] == ["zero", "one"]
    assert res.report["llm_keys"] == ["sound"] and res.report["templates_added"] == 2
    assert res.report["templates_rejected"] == 2 + 4
    assert set(res.report["offline_keys"]) == {"count", "quote", "flaky"}
    # an endpoint that never answered is an endpoint fallback for the build report
    assert res.note.startswith("offline table (LLM failed: 1 key(s), first 'flaky'")
    ok = provider.resolve(templates_env(FakeLLM(lambda req: answer(req) if "{x}" not in req[0][-1]["content"]
                                                else {"templates": ["Flaky {x} one.", "{x} flaky two.", "a", "b"]}),
                                        tmp_path))
    assert not ok.note.startswith("offline table") and "2 key(s) kept offline (count, quote)" in ok.note
    assert ok.value["templates"]["flaky"] == ["Flaky {x} answer.", "Flaky {x} one.", "{x} flaky two."]


def test_answer_templates_refuse_a_table_that_breaks_its_rules(tmp_path):
    from streamaudio.text.templates import AnswerTemplates

    for bad in ({"templates": {"a": ["One {x} here.", "Two {y} here."]}},  # placeholder sets differ
                {"templates": {"a": ["Positional {0} field."]}}, {"templates": {"a": []}}, {"other": 1}):
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
        with pytest.raises(ValueError):
            AnswerTemplates("bad.yaml").resolve(templates_env(None, tmp_path))


def test_answer_templates_with_the_devserver_fall_back_and_rebuild_from_cache(tmp_path):
    from streamaudio.text.devserver import DevServer
    from streamaudio.text.llm import LLMClient, LLMConfig
    from streamaudio.text.templates import AnswerTemplates

    provider = AnswerTemplates("chat/history_review.yaml")
    offline = provider.resolve(templates_env(None))
    keys = list(offline.value["templates"])
    with DevServer() as srv:
        def client():
            return LLMClient(LLMConfig(base_url=srv.base_url, model="dev-model", timeout_s=2.0, backoff_s=0.01),
                             cache_dir=tmp_path / "cache")

        c = client()
        res = provider.resolve(templates_env(c))
        assert srv.requests == len(keys)
        sent = [call["request"]["messages"][-1]["content"] for call in srv.log]
        assert all(any(f"{{{p}}}" in s for s in sent) for p in ("request", "sound", "count"))
        # the server's filler keeps no placeholder: every key keeps its hand-written templates
        assert res.value == offline.value and res.writer == "table"
        assert sorted(res.report["offline_keys"]) == sorted(keys) and res.report["templates_rejected"] == 3 * len(keys)
        assert not res.note.startswith("offline table (LLM failed")  # the model answered: not an endpoint failure
        assert c.usage.as_dict()["answer_templates"]["calls"] == len(keys)
        c2 = client()
        again = provider.resolve(templates_env(c2))
        assert srv.requests == len(keys) and again.value == res.value  # a rebuild asks nothing
        assert c2.usage.as_dict()["answer_templates"]["cache_hits"] == len(keys)


# ---------------------------------------------------------------- Pool.with_value
def test_pool_with_value_is_an_index_over_arrow():
    rows = [{"id": str(i), "dialogue": None if i % 11 == 0 else f"d{i % 37}", "turn": i % 5} for i in range(2000)]
    table = pa.concat_tables([pa.Table.from_pylist(rows[:700]), pa.Table.from_pylist(rows[700:])])  # two chunks
    pool = Pool("p", table)
    for d in ("d0", "d5", "d36"):
        got = pool.with_value("dialogue", d)
        assert [r["id"] for r in got] == [r["id"] for r in rows if r["dialogue"] == d]  # manifest order
    assert len(pool._rows) <= 3 * 60  # only the rows read were materialised
    assert len(pool.with_value("dialogue", "nope")) == 0 and len(pool.with_value("dialogue", 3)) == 0
    assert len(pool.with_value("dialogue", None)) == 0 and len(pool.with_value("missing", "x")) == 0
    assert [r["id"] for r in pool.with_value("turn", 4)][:3] == ["4", "9", "14"]
    assert pool._by_value["dialogue"] is not None and len(pool._by_value) == 3  # one index per column, kept
