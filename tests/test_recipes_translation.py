"""Speech translation (s2tt_en_zh, s2tt_zh_en, s2tt_x_en, s2tt_instructed) and
asr_multilingual: plan-level checks on the fixture pools, the clause table provider
(offline rule, LLM answers checked, the dev server), and the built demo's rows."""
import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamaudio.build.shards import episode_row
from streamaudio.plan import PlanContext, PlanError, Pool, episode_seed, load_recipes
from streamaudio.plan.store import plan_to_dict
from streamaudio.render.label import episode_violations
from conftest import due_after_last_word  # noqa: E402
from streamaudio.text.clauses import (ClauseAlignment, Translations, join_clauses, norm_chars,
                                      offline_clauses, primary)
from streamaudio.text.llm import LLMError
from streamaudio.text.tables import TableEnv, load_yaml, table_path

RECIPES = load_recipes()
MARKS = load_yaml(table_path("translation/clauses.yaml", None))
CLAUSE_END = re.compile(r"[,;:，；：、.!?。！？]$")  # a word that closes a clause or the sentence
SUBTASKS = ("s2tt_en_zh", "s2tt_zh_en", "s2tt_x_en", "s2tt_instructed", "asr_multilingual")


# ---------------------------------------------------------------- fixtures and helpers
def timed_words(text: str, duration_s: float) -> list[dict]:
    """Word timings spread over the clip by each word's length (a stand-in for an aligner)."""
    toks = text.split()
    lo, hi = 0.25, duration_s - 0.35
    weights = np.array([len(t) + 1 for t in toks], float)
    edges = lo + (hi - lo) * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
    return [{"text": t, "start_s": round(float(a), 4), "end_s": round(float(b) - 0.03, 4)}
            for t, a, b in zip(toks, edges[:-1], edges[1:])]


@pytest.fixture(scope="module")
def pools(clip_pools):
    out = dict(clip_pools)
    # the CoVoST 2 stand-in with word timings on its English clips (what the demo's aligner gives)
    out["translated_timed"] = [{**r, "words": timed_words(r["text"], r["duration_s"]), "words_by": "test-spread"}
                               if r["language"] == "en" else r for r in clip_pools["translated"]]
    return out


def tables_for(recipe, pools, mapping, llm=None):
    env_pools = {p: {"train": pa.Table.from_pylist(pools[src])} for p, src in mapping.items()}
    if llm is None:
        return recipe.offline_tables(env_pools, seed=7)
    env = TableEnv(llm=llm, subtask=recipe.subtask, ability=recipe.ability, description=recipe.description,
                   folder=recipe.folder, pools=env_pools, seed=7)
    for name, provider in recipe.providers().items():
        env.tables[name] = provider.resolve(env).value
    return env.tables


def plan_for(subtask, pools, mapping, eid, tables=None):
    recipe = RECIPES[subtask]
    ctx = PlanContext(episode_id=eid, subtask=subtask, split="train", rng=np.random.default_rng(episode_seed(7, eid)),
                      pools={p: Pool(p, pools[s]) for p, s in mapping.items()},
                      tables=tables if tables is not None else tables_for(recipe, pools, mapping))
    return recipe.plan(ctx)


def to_row(subtask, plan, eid="e"):
    recipe = RECIPES[subtask]
    row = episode_row(json.loads(json.dumps(plan_to_dict(plan))), episode_id=eid, subtask=subtask,
                      ability=recipe.ability, split="train", recipe_version=recipe.version, seed=0, chunk_s=0.4)
    assert episode_violations(row) == []
    return row


def replies_of(row: dict, i: int) -> list[dict]:
    return [t for t in row["turns"] if t["kind"] == "respond" and t["evidence"] == [i]]


def check_translated_segments(row: dict, clause_level_seen: list) -> None:
    """What every translated utterance of a built or planned row must hold: its replies join up
    to its reference translation, each due at a word that closes a clause (or the sentence)
    or, without word timings, at the segment's end; replies >= 0.8 s apart."""
    for i, seg in enumerate(row["segments"]):
        attrs = json.loads(seg["attrs"])
        if seg["kind"] != "speech" or "translation" not in attrs:
            continue
        replies = replies_of(row, i)
        assert replies, "every translated utterance is answered"
        joined = join_clauses([t["text"] for t in replies], attrs["target_language"], MARKS)
        assert norm_chars(joined) == norm_chars(attrs["translation"])
        assert joined.replace(" ", "") == attrs["translation"].replace(" ", "")  # the reference's own text
        for t in replies:
            assert t["trigger_s"] == pytest.approx(t["evidence_s"], abs=2e-3)
        if seg["words"]:
            for t in replies[:-1]:
                w = [w for w in seg["words"] if abs(w["end_s"] - t["evidence_s"]) < 2e-3]
                assert w, "a reply is due at a word's end"
                assert CLAUSE_END.search(w[-1]["text"]), w[-1]["text"]
            # the last clause waits until the sentence is no longer heard
            assert due_after_last_word(replies[-1]["evidence_s"], seg["words"][-1]["end_s"])
        else:
            (t,) = replies
            # at the clip's end (TFJP mixes only its audible span, so the segment may end before)
            assert t["evidence_s"] >= seg["end_s"] - 2e-3 and attrs["reply_at"] == "clip_end"
        if len(replies) > 1:
            clause_level_seen.append(i)
        # the offline rule's contract: as many clause marks on both sides, clause ends on words
        # well apart -> one reply per clause
        src_marks = re.findall(r"[，；：、]|[,;:](?=\s)", seg["text"])
        tgt_marks = re.findall(r"[，；：、]|[,;:](?=\s)", attrs["translation"])
        ends = [w["end_s"] for w in seg["words"] if CLAUSE_END.search(w["text"])]
        if seg["words"] and src_marks and len(src_marks) == len(tgt_marks) and len(ends) == len(src_marks) + 1 \
                and (np.diff(ends) >= 0.8).all():
            assert len(replies) == len(ends), (seg["text"], [t["text"] for t in replies])
        gaps = np.diff([t["trigger_s"] for t in replies])
        assert (gaps >= 0.8 - 1e-6).all()


# ---------------------------------------------------------------- the clause rule and providers
def _row(text, translation, lang="en", tlang="zh-CN", words=True):
    return {"id": f"t:{text[:12]}", "text": text, "translation": translation, "language": lang,
            "translation_language": tlang, "words": timed_words(text, 5.0) if words else []}


BRIDGE = ("The bridge was closed for repairs, so we drove around the lake all winter.",
          "桥因为维修关闭了，所以我们整个冬天都绕着湖开车。")
GRANNY = ("My grandmother still writes letters by hand.", "我的祖母仍然亲手写信。")
SWIM = ("He learned to swim when he was six.", "他六岁的时候学会了游泳。")


def test_offline_rule_cuts_the_fixture_sentences_into_aligned_clauses():
    row = _row(*BRIDGE)
    clauses, why = offline_clauses(row, MARKS)
    assert why == "" and [c["source"] for c in clauses] == ["The bridge was closed for repairs,",
                                                            "so we drove around the lake all winter."]
    assert [c["target"] for c in clauses] == ["桥因为维修关闭了，", "所以我们整个冬天都绕着湖开车。"]
    assert "".join(c["target"] for c in clauses) == BRIDGE[1]
    assert [row["words"][c["last_word"]]["text"] for c in clauses] == ["repairs,", "winter."]
    de, _ = offline_clauses(_row("When the bakery opens in the morning, the shop on the corner sells fresh bread.",
                                 "Wenn die Bäckerei morgens öffnet, verkauft der Laden an der Ecke frisches Brot.",
                                 tlang="de"), MARKS)
    assert [c["target"] for c in de] == ["Wenn die Bäckerei morgens öffnet,",
                                         "verkauft der Laden an der Ecke frisches Brot."]
    # Mandarin source, English target: CJK marks cut the source, words are characters here
    zh = _row("今天早上下了大雨，我们就没有去公园。", "It rained heavily this morning, so we did not go to the park.",
              "zh-CN", "en")
    zh["words"] = [{"text": ch, "start_s": k * 0.2, "end_s": k * 0.2 + 0.18}
                   for k, ch in enumerate("今天早上下了大雨我们就没有去公园")]
    zh_clauses, _ = offline_clauses(zh, MARKS)
    assert [c["last_word"] for c in zh_clauses] == [7, 15]
    # no clause punctuation, a count mismatch, words that do not spell the sentence: one clause
    assert offline_clauses(_row(*GRANNY), MARKS)[0] is None
    assert offline_clauses(_row(BRIDGE[0], "桥因为维修关闭了所以我们整个冬天都绕着湖开车。"), MARKS)[0] is None
    bad = _row(*BRIDGE)
    bad["words"] = bad["words"][:-1]
    assert "do not spell" in offline_clauses(bad, MARKS)[1]


class FakeLLM:
    """Answers by the source sentence in the request; an LLMError where the answer is one."""

    class config:
        tag = "llm:fake"

    def __init__(self, answers):
        self.answers, self.asked = answers, []

    def complete_json(self, stage, messages, schema, name="reply"):
        raise LLMError(f"{stage}: the fake answers clauses and translations only")

    def map_json(self, stage, requests):
        out = []
        for messages, _schema in requests:
            user = messages[-1]["content"]
            self.asked.append((stage, user))
            key = next(k for k in self.answers if k in user)
            out.append(self.answers[key])
        return out


def _env(rows, llm=None, rejects=None):
    def reject(stage, item, reason):
        if rejects is not None:
            rejects.append((stage, item, reason))

    return TableEnv(llm=llm, subtask="s2tt_en_zh", ability="speech_translation", description="", folder=None,
                    pools={"speech": {"train": pa.Table.from_pylist(rows)}}, reject=reject)


def test_clause_table_keeps_llm_alignments_that_hold_and_falls_back_otherwise():
    rows = [_row(*BRIDGE), _row(*GRANNY), _row(*SWIM), _row(*BRIDGE, tlang="de"),
            {**_row("The river floods the meadows every spring, and the farmers move their cattle up the hill.",
                    "每年春天河水都会淹没草地，农民们把牛赶到山上。"), "words": []}]
    rows[3]["id"] = "t:other-direction"
    llm = FakeLLM({
        # the translation changed: does not join up to the reference -> the punctuation rule
        BRIDGE[0]: {"clauses": [{"source": "The bridge was closed for repairs,", "target": "桥关闭了，"},
                                {"source": "so we drove around the lake all winter.", "target": "所以我们绕湖开车。"}]},
        # a valid cut the punctuation rule cannot find
        GRANNY[0]: {"clauses": [{"source": "My grandmother", "target": "我的祖母"},
                                {"source": "still writes letters by hand.", "target": "仍然亲手写信。"}]},
        # reordered target clauses: they do not join up to the reference in this order
        SWIM[0]: LLMError("clauses: reply still invalid after 2 repair(s): (top): bad"),
    })
    res = ClauseAlignment(pool="speech", source="en", target="zh").resolve(_env(rows, llm))
    # only en->zh rows with word timings are asked about (the German row and the untimed one are not)
    assert len(llm.asked) == 3 and all(stage == "clauses" for stage, _ in llm.asked)
    value = res.value
    assert [c["target"] for c in value[rows[1]["id"]]] == ["我的祖母", "仍然亲手写信。"]
    assert value[rows[1]["id"]][0]["last_word"] == 1
    # the bridge sentence fell back to the rule: the reference's own clauses, not the LLM's text
    assert [c["target"] for c in value[rows[0]["id"]]] == ["桥因为维修关闭了，", "所以我们整个冬天都绕着湖开车。"]
    assert rows[2]["id"] not in value and rows[4]["id"] not in value and rows[3]["id"] not in value
    assert res.report["llm"]["accepted"] == 1 and res.report["llm"]["fell_back"] == 2
    assert res.writer == "llm:fake" and "1 of 3" in res.note and "fell back" in res.note
    assert not res.note.startswith("offline table (LLM failed")  # answers that do not hold are no endpoint failure

    reordered = FakeLLM({SWIM[0]: {"clauses": [{"source": "He learned to swim", "target": "学会了游泳"},
                                               {"source": "when he was six.", "target": "他六岁的时候。"}]}})
    res = ClauseAlignment(pool="speech", source="en", target="zh").resolve(_env([_row(*SWIM)], reordered))
    assert res.value == {} and res.writer == "rules:clause-punctuation"
    assert "do not join up" in json.dumps(res.report["llm"]["reasons"])


def test_translations_are_checked_and_rejected_rows_recorded():
    rows = [{"id": f"aishell:{k}", "text": t, "language": "zh", "translation": "", "translation_language": ""}
            for k, t in enumerate(["今天的天气非常好", "请把窗户关上", "这本书我已经看完了", "会议将在下午三点开始"])]
    llm = FakeLLM({"今天的天气非常好": {"translation": "The weather is very nice today."},
                   "请把窗户关上": {"translation": "请把窗户关上"},
                   "这本书我已经看完了": {"translation": "I have finished 这本书."},
                   "会议将在下午三点开始": {"translation": "translation:"}})
    rejects = []
    res = Translations(pool="speech", source="zh", target="en").resolve(_env(rows, llm, rejects))
    assert res.value == {"aishell:0": "The weather is very nice today."}
    assert sorted(item for _, item, _ in rejects) == ["aishell:1", "aishell:2", "aishell:3"]
    assert {stage for stage, _, _ in rejects} == {"translate"}
    assert Translations(pool="speech").resolve(_env(rows)).value == {}  # offline: none, the rows are not used


def test_devserver_answers_fall_back_are_counted_and_cached(tmp_path, pools):
    from streamaudio.text.devserver import DevServer
    from streamaudio.text.llm import LLMClient, LLMConfig

    rows = pools["translated_timed"] + pools["multilingual"]
    with DevServer() as srv:
        def client():
            return LLMClient(LLMConfig(base_url=srv.base_url, model="dev-model", timeout_s=5.0), cache_dir=tmp_path)

        clauses = ClauseAlignment(pool="speech", source="en")
        first = clauses.resolve(_env(rows, client()))
        n = sum(1 for r in rows if r["language"] == "en" and r["translation"] and r["words"])
        assert first.report["clips"] == n and first.report["llm"]["asked"] == n
        # filler text never joins up to the sentence: every clip falls back to the rule, said in the note
        assert first.report["llm"]["fell_back"] == n and first.writer == "rules:clause-punctuation"
        assert f"0 of {n}" in first.note
        assert first.value == clauses.resolve(_env(rows)).value and first.value
        rejects = []
        translated = Translations(pool="speech", source="zh", target="en").resolve(_env(rows, client(), rejects))
        n_zh = sum(1 for r in rows if r["language"] == "zh" and not r["translation"])
        assert translated.value == {} and len(rejects) == n_zh > 0
        asked = srv.requests
        assert asked == n + n_zh
        again = clauses.resolve(_env(rows, client()))
        Translations(pool="speech", source="zh", target="en").resolve(_env(rows, client(), []))
        assert srv.requests == asked and again.value == first.value  # a rebuild asks nothing


# ---------------------------------------------------------------- plans
EN_ZH = {"speech": "translated_timed", "noise": "noise"}


def test_s2tt_en_zh_replies_clause_by_clause_at_each_clause_end(pools):
    tables = tables_for(RECIPES["s2tt_en_zh"], pools, EN_ZH)
    assert len(tables["clauses"]) >= 3  # the bridge, bakery and river sentences
    seen = []
    for k in range(6):
        row = to_row("s2tt_en_zh", plan_for("s2tt_en_zh", pools, EN_ZH, f"enzh-{k}", tables))
        speech = [s for s in row["segments"] if s["kind"] == "speech"]
        assert 2 <= len(speech) <= 5 and row["language"] == "en"
        for s in speech:
            attrs = json.loads(s["attrs"])
            assert s["language"] == "en" and primary(attrs["target_language"]) == "zh"
        check_translated_segments(row, seen)
        for i, s in enumerate(row["segments"]):
            attrs = json.loads(s["attrs"])
            if attrs.get("reply_unit") == "clause":
                # one reply per clause of the source, split where its clause punctuation is
                n = len([w for w in s["words"] if CLAUSE_END.search(w["text"])])
                assert len(replies_of(row, i)) == n
    assert seen, "some utterance was translated clause by clause"


def test_s2tt_en_zh_replies_per_sentence_without_word_timings(pools):
    mapping = {"speech": "translated", "noise": "noise"}
    for k in range(3):
        plan = plan_for("s2tt_en_zh", pools, mapping, f"enzh-nowords-{k}")
        row = to_row("s2tt_en_zh", plan)
        for i, s in enumerate(row["segments"]):
            if s["kind"] != "speech":
                continue
            (t,) = replies_of(row, i)
            clip = plan.segments[i].clip
            assert t["text"] == clip["translation"] and primary(clip["translation_language"]) == "zh"
            assert t["trigger_s"] == pytest.approx(s["start_s"] + clip["duration_s"], abs=2e-3)
            assert json.loads(s["attrs"])["reply_at"] == "clip_end"
        check_translated_segments(row, [])


def test_s2tt_zh_en_translates_mandarin_per_sentence_at_the_clip_end(pools):
    mapping = {"speech": "translated", "mandarin": "multilingual", "noise": "noise"}
    refs = {r["text"]: r["translation"] for r in pools["translated"] if r["language"].startswith("zh")}
    for k in range(4):
        plan = plan_for("s2tt_zh_en", pools, mapping, f"zhen-{k}")
        row = to_row("s2tt_zh_en", plan)
        speech = [(i, s) for i, s in enumerate(row["segments"]) if s["kind"] == "speech"]
        assert speech and row["language"] == "zh-CN"
        for i, s in speech:
            (t,) = replies_of(row, i)
            assert t["text"] == refs[s["text"]]  # CoVoST's English; offline, AISHELL (no translation) is never used
            assert plan.segments[i].clip["corpus"] == "covost2"
        check_translated_segments(row, [])


def test_s2tt_zh_en_uses_llm_translated_aishell_clips(pools):
    recipe = RECIPES["s2tt_zh_en"]
    mapping = {"speech": "translated", "mandarin": "multilingual", "noise": "noise"}
    aishell = [r for r in pools["multilingual"] if r["corpus"] == "aishell"]
    llm = FakeLLM({r["text"]: {"translation": f"English sentence number {k} from Mandarin."}
                   for k, r in enumerate(aishell)})
    # the clause table too is asked, about nothing here: no zh->en clip has word timings
    tables = tables_for(recipe, pools, mapping, llm=llm)
    assert len(tables["translations"]) == len(aishell)
    used = set()
    for k in range(8):
        plan = plan_for("s2tt_zh_en", pools, mapping, f"zhen-llm-{k}", tables)
        row = to_row("s2tt_zh_en", plan)
        for i, seg in enumerate(plan.segments):
            if seg.kind == "speech":
                (t,) = replies_of(row, i)
                want = tables["translations"].get(seg.clip["id"]) or seg.clip["translation"]
                assert t["text"] == want
                used.add(seg.clip["corpus"])
                assert seg.attrs["translation_by"] == ("llm" if seg.clip["corpus"] == "aishell" else "reference")
    assert used == {"aishell", "covost2"}


def test_s2tt_x_en_replies_the_english_reference_at_each_sentence_end(pools):
    mapping = {"speech": "translated", "noise": "noise"}
    for k in range(4):
        plan = plan_for("s2tt_x_en", pools, mapping, f"xen-{k}")
        row = to_row("s2tt_x_en", plan)
        speech = [i for i, s in enumerate(row["segments"]) if s["kind"] == "speech"]
        assert 2 <= len(speech) <= 5
        langs = {plan.segments[i].clip["language"] for i in speech}
        assert len(langs) == 1 and primary(langs.pop()) not in ("en", "zh")
        for i in speech:
            clip = plan.segments[i].clip
            (t,) = replies_of(row, i)
            assert t["text"] == clip["translation"] and clip["translation_language"] == "en"
            assert t["trigger_s"] == pytest.approx(row["segments"][i]["start_s"] + clip["duration_s"], abs=2e-3)


def test_s2tt_instructed_translates_into_the_language_asked_for(pools):
    mapping = {"speech": "translated_timed", "prompts": "prompts", "noise": "noise"}
    tables = tables_for(RECIPES["s2tt_instructed"], pools, mapping)
    targets, seen = set(), []
    for k in range(10):
        plan = plan_for("s2tt_instructed", pools, mapping, f"instr-{k}", tables)
        row = to_row("s2tt_instructed", plan)
        prompt = plan.segments[1]
        assert "translate_to" in prompt.clip["labels"]
        (slot,) = [lab.split("=", 1)[1] for lab in prompt.clip["labels"] if lab.startswith("language=")]
        assert prompt.attrs["target_language"] == slot and prompt.attrs["voice"] == prompt.clip["speaker"]
        # the instruction itself: a stay_silent turn after it, naming it
        first = row["turns"][0]
        assert first["kind"] == "stay_silent" and first["evidence"] == [1]
        assert first["evidence_s"] == pytest.approx(prompt.start_s + prompt.clip["words"][-1]["end_s"], abs=2e-3)
        utterances = [s for s in plan.segments[2:] if s.kind == "speech"]
        assert 2 <= len(utterances) <= 4
        for s in utterances:
            assert s.clip["language"] == "en" and s.clip["translation_language"] == slot
            assert s.start_s >= prompt.start_s + prompt.clip["duration_s"]
        check_translated_segments(row, seen)
        targets.add(slot)
    assert targets == {"de", "zh-CN"}  # every language both the prompts and the speech have
    assert seen


def test_s2tt_instructed_refuses_when_no_language_is_in_both_pools(pools):
    only_ja = [r for r in pools["prompts"] if "language=ja" in r["labels"] or "translate_to" not in r["labels"]]
    pools = {**pools, "ja_prompts": only_ja}
    mapping = {"speech": "translated", "prompts": "ja_prompts", "noise": "noise"}
    with pytest.raises(PlanError, match=r"no target language .*\['ja'\].*\['de', 'zh-cn'\]"):
        plan_for("s2tt_instructed", pools, mapping, "instr-none")


def test_asr_multilingual_transcribes_each_utterance_in_its_own_language(pools):
    mapping = {"speech": "multilingual", "noise": "noise"}
    langs_per_episode = []
    for k in range(5):
        plan = plan_for("asr_multilingual", pools, mapping, f"ml-{k}")
        row = to_row("asr_multilingual", plan)
        speech = [i for i, s in enumerate(row["segments"]) if s["kind"] == "speech"]
        assert 3 <= len(speech) <= 6
        for i in speech:
            clip = plan.segments[i].clip
            (t,) = replies_of(row, i)
            assert t["text"] == clip["text"] and row["segments"][i]["language"] == clip["language"]
            assert t["trigger_s"] == pytest.approx(row["segments"][i]["start_s"] + clip["duration_s"], abs=2e-3)
        langs = [row["segments"][i]["language"] for i in speech]
        assert len(set(langs)) >= 2
        counts = {lang: langs.count(lang) for lang in langs}
        assert counts[row["language"]] == max(counts.values())
        langs_per_episode.append(frozenset(langs))
    assert len(set(langs_per_episode)) > 1


# ---------------------------------------------------------------- the built demo
def built_rows(built, subtask):
    files = sorted((built["one"] / "data" / subtask).glob("*.parquet"))
    if not files:
        pytest.skip(f"{subtask} is not in the demo catalog")
    return [r for f in files for r in pq.read_table(f).to_pylist()]


@pytest.mark.parametrize("subtask", SUBTASKS)
def test_built_translation_and_multilingual_episodes(built, subtask):
    rows = built_rows(built, subtask)
    assert rows
    clause_level = []
    for row in rows:
        assert episode_violations(row) == []
        speech = [(i, s, json.loads(s["attrs"])) for i, s in enumerate(row["segments"]) if s["kind"] == "speech"]
        if subtask == "asr_multilingual":
            for i, s, _ in speech:
                (t,) = replies_of(row, i)
                assert t["text"] == s["text"]
            continue
        check_translated_segments(row, clause_level)
        utterances = [(i, s, a) for i, s, a in speech if "translation" in a]
        assert utterances
        for _, s, a in utterances:
            src, tgt = primary(a["source_language"]), primary(a["target_language"])
            assert src == primary(s["language"])
            if subtask == "s2tt_en_zh":
                assert (src, tgt) == ("en", "zh")
            elif subtask == "s2tt_zh_en":
                assert (src, tgt) == ("zh", "en")
            elif subtask == "s2tt_x_en":
                assert tgt == "en" and src not in ("en", "zh")
        if subtask == "s2tt_instructed":
            prompt = [a for _, _, a in speech if a.get("intent") == "translate_to"]
            assert len(prompt) == 1 and row["turns"][0]["kind"] == "stay_silent"
            assert {a["target_language"] for _, _, a in utterances} == {prompt[0]["target_language"]}
    if subtask in ("s2tt_en_zh", "s2tt_instructed") and any(s["words"] for r in rows for s in r["segments"]
                                                             if json.loads(s["attrs"]).get("clauses")):
        assert clause_level  # the demo's English clips are aligned: some replies come clause by clause


def test_a_small_split_gives_fewer_utterances_not_repeats():
    import numpy as np

    from streamaudio.plan import Pool

    pool = Pool("p", [{"id": f"c{i}", "language": "en" if i < 2 else "fr"} for i in range(40)])
    rng = np.random.default_rng(0)
    got = pool.sample(rng, 5, where=lambda r: r["language"] == "en", repeats=False)
    assert sorted(r["id"] for r in got) == ["c0", "c1"]
    assert len(pool.sample(rng, 5, where=lambda r: r["language"] == "en")) == 5  # the default repeats
    assert len({r["id"] for r in pool.sample(rng, 60, repeats=False)}) == 40
