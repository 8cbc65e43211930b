import io
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from streamaudio.build.shards import episode_row
from streamaudio.format import SAMPLE_RATE
from streamaudio.plan import (EpisodePlan, PlanContext, Pool, RecipeError, SegmentPlan, TurnPlan, episode_seed,
                              load_recipes)
from streamaudio.plan.store import plan_to_dict
from streamaudio.render.label import episode_violations
from streamaudio.render.mix import active_level_db, render

MAPPING = {"asr_utterance": {"speech": "librispeech", "noise": "noise"},
           "asr_incremental": {"speech": "aligned", "noise": "noise"},
           "proactive_household": {"events": "sound", "noise": "noise"},
           "chat_single_turn": {"speech": "spoken", "noise": "noise"}}


@pytest.fixture(scope="module")
def pools(clip_pools):
    return clip_pools


def plan_for(recipe, pools, eid, seed=7, mapping=None):
    mapping = mapping or MAPPING[recipe.subtask]
    ctx = PlanContext(episode_id=eid, subtask=recipe.subtask, split="train",
                      rng=np.random.default_rng(episode_seed(seed, eid)),
                      pools={p: Pool(p, pools[s]) for p, s in mapping.items()}, tables=recipe.offline_tables())
    return recipe.plan(ctx)


def to_row(recipe, plan, eid="e"):
    return episode_row(json.loads(json.dumps(plan_to_dict(plan))), episode_id=eid, subtask=recipe.subtask,
                       ability=recipe.ability, split="train", recipe_version=recipe.version, seed=0, chunk_s=0.4)


def test_registry_has_the_builtin_recipes():
    recipes = load_recipes()
    assert {"asr_utterance", "asr_incremental", "proactive_household", "chat_single_turn"} <= set(recipes)
    assert recipes["proactive_household"].ability == "proactive_response"


def test_asr_utterance_replies_are_the_transcripts_in_order(pools):
    recipe = load_recipes()["asr_utterance"]
    plan = plan_for(recipe, pools, "asr-1")
    speech = [s for s in plan.segments if s.kind == "speech"]
    assert 3 <= len(speech) <= 8
    assert [t.text for t in plan.turns] == [s.clip["text"] for s in speech]
    for s, t in zip(speech, plan.turns):
        assert abs(t.trigger_s - (s.start_s + s.clip["duration_s"])) < 1e-9  # no word timings yet: end of file


def test_asr_utterance_triggers_at_the_last_aligned_word(pools):
    recipe = load_recipes()["asr_utterance"]
    plan = plan_for(recipe, pools, "asr-2", mapping={"speech": "spoken", "noise": "noise"})
    for s, t in zip([s for s in plan.segments if s.kind == "speech"], plan.turns):
        assert abs(t.trigger_s - (s.start_s + s.clip["words"][-1]["end_s"])) < 1e-9
        assert t.trigger_s < s.start_s + s.clip["duration_s"]
    assert plan.aligner == "espeak-ng word events"


def test_asr_incremental_emits_each_word_in_the_chunk_it_ends(pools):
    from streamaudio.format import chunk_of

    recipe = load_recipes()["asr_incremental"]
    for i in range(10):
        plan = plan_for(recipe, pools, f"inc-{i}")
        speech = [s for s in plan.segments if s.kind == "speech"]
        ends = [(s.start_s + w["end_s"], w["text"]) for s in speech for w in s.clip["words"]]
        # every word once, in order, across the replies
        assert " ".join(t.text for t in plan.turns) == " ".join(w for _, w in ends)
        chunks = [chunk_of(t.trigger_s) for t in plan.turns]
        assert len(set(chunks)) == len(chunks)
        assert set(chunks) == {chunk_of(e) for e, _ in ends}  # no reply in a chunk that completes no word
        row = to_row(recipe, plan)
        assert episode_violations(row) == []
        assert sum(row["chunk_labels"]) == len(set(chunks))
        # each reply's evidence is the utterance, heard up to the end of the reply's last word; the
        # utterance's last reply waits until it is no longer heard (settled on the audio: at or a
        # little after its last word's end)
        for t in row["turns"]:
            seg = row["segments"][t["evidence"][0]]
            last = seg["words"][-1]["end_s"]
            assert any(abs(w["end_s"] - t["evidence_s"]) < 1e-3 for w in seg["words"]) \
                or last - 1e-3 <= t["evidence_s"] <= last + 0.5


def test_proactive_household_follows_the_policy_table(pools):
    recipe = load_recipes()["proactive_household"]
    policy = recipe.offline_tables()["policy"]["labels"]
    kinds = set()
    for i in range(20):
        plan = plan_for(recipe, pools, f"ph-{i}")
        events = [s for s in plan.segments if s.role == "environment"]
        assert len(events) == len(plan.turns)
        assert any(t.kind == "respond" for t in plan.turns)
        for seg, turn in zip(events, plan.turns):
            actions = {policy[l]["action"] for l in seg.clip["labels"] if l in policy}
            want = "respond" if "respond" in actions else "stay_silent"
            assert turn.kind == want
            event_end = seg.start_s + seg.clip["active_end_s"] - seg.clip_start_s
            assert 0.3 - 1e-9 <= turn.trigger_s - event_end <= 1.0 + 1e-9
            assert turn.evidence == [seg] and plan.evidence_of(turn)[1] == pytest.approx(event_end)
            if turn.kind == "respond":
                replies = [r for l in seg.clip["labels"] if l in policy for r in policy[l].get("replies", [])]
                assert turn.text in replies
            kinds.add(turn.kind)
    assert kinds == {"respond", "stay_silent"}


def test_chat_single_turn_triggers_at_the_last_word(pools):
    recipe = load_recipes()["chat_single_turn"]
    plan = plan_for(recipe, pools, "chat-1")
    q = next(s for s in plan.segments if s.kind == "speech")
    (turn,) = plan.turns
    assert turn.text == q.clip["response"]
    assert abs(turn.trigger_s - (q.start_s + q.clip["words"][-1]["end_s"])) < 1e-9
    assert turn.trigger_s < q.start_s + q.clip["duration_s"]


def test_asr_noisy_reaches_its_target_snr_and_records_it(pools):
    recipe = load_recipes()["asr_noisy"]
    targets = []
    for i in range(6):
        plan = plan_for(recipe, pools, f"noisy-{i}", mapping={"speech": "librispeech", "noise": "noise"})
        row = to_row(recipe, plan)
        assert episode_violations(row) == []
        speech = [s for s in row["segments"] if s["kind"] == "speech"]
        target = json.loads(speech[0]["attrs"])["target_snr_db"]
        assert 0.0 <= target <= 20.0
        targets.append(target)
        for s in speech:
            assert json.loads(s["attrs"]) == {"target_snr_db": target}
            # measured on the mix: the speech over the bed where it lies, as asked
            assert s["snr_db"] == pytest.approx(target, abs=0.05), (target, s["snr_db"])
            assert abs(s["gain_db"]) < 10  # the bed was set near the target: speech stays near the reference level
        assert [t["text"] for t in row["turns"]] == [s["text"] for s in speech]
    assert max(targets) - min(targets) > 5  # the SNR varies between episodes


def test_user_recipe_folder(tmp_path):
    mine = textwrap.dedent('''
        from streamaudio.plan import EpisodePlan, Recipe
        RECIPE = Recipe(subtask="agent_addressee", ability="environment_agent", version="0",
                        pools={"noise": "noise"}, plan=lambda ctx: EpisodePlan(segments=[], turns=[]){replaces})
    ''')
    (tmp_path / "agent_addressee.py").write_text(mine.replace("{replaces}", ", replaces=True"))
    recipes = load_recipes((tmp_path,))
    assert Path(recipes["agent_addressee"].module_path) == (tmp_path / "agent_addressee.py").resolve()
    # taking a built-in sub-task's place is deliberate: without replaces=True it is an error that says how
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "agent_addressee.py").write_text(mine.replace("{replaces}", ""))
    if "agent_addressee" in load_recipes():
        with pytest.raises(RecipeError, match="replaces=True"):
            load_recipes((plain,))
    dup = tmp_path / "dup"
    dup.mkdir()
    (dup / "x.py").write_text((tmp_path / "agent_addressee.py").read_text())
    with pytest.raises(RecipeError, match="already defined"):
        load_recipes((tmp_path, dup))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "y.py").write_text((tmp_path / "agent_addressee.py").read_text().replace("environment_agent", "voice_chatting"))
    with pytest.raises(RecipeError, match="belongs to ability"):
        load_recipes((bad,))


def _beep_clip(tmp_path, sr, at_s=0.5, dur_s=2.0, name="beep"):
    x = np.zeros(int(dur_s * sr), np.float32)
    n = int(0.2 * sr)
    x[int(at_s * sr):int(at_s * sr) + n] = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(n) / sr)
    path = tmp_path / f"{name}-{sr}.wav"
    sf.write(path, x, sr)
    return {"id": f"t:{name}{sr}", "corpus": "t", "path": str(path), "offset_s": 0.0, "duration_s": dur_s,
            "sample_rate": sr, "text": "", "labels": [], "license": "", "words": []}


@pytest.mark.parametrize("sr", [16000, 44100, 48000])
def test_render_places_clips_where_planned(tmp_path, sr):
    clip = _beep_clip(tmp_path, sr)
    plan = EpisodePlan(segments=[SegmentPlan(clip=clip, start_s=1.3, kind="sound", role="environment")],
                       turns=[TurnPlan(trigger_s=2.0, kind="respond", text="beep")])
    r = render(plan)
    x, _ = sf.read(io.BytesIO(r.flac))
    onset = np.argmax(np.abs(x) > 0.05) / SAMPLE_RATE
    assert abs(onset - 1.8) < 0.005
    assert r.duration_s == 3.6  # 1.3 + 2.0 = 3.3 s of audio, rounded up to whole chunks
    assert r.segments[0]["start_s"] == 1.3 and abs(r.segments[0]["end_s"] - 3.3) < 1e-3


def test_gain_and_background_loop(tmp_path):
    loud, quiet = _beep_clip(tmp_path, 16000, name="a"), _beep_clip(tmp_path, 16000, at_s=0.1, dur_s=0.5, name="b")
    noise = tmp_path / "noise.wav"
    sf.write(noise, (np.random.default_rng(0).standard_normal(8000) * 0.1).astype(np.float32), 16000)
    bed = {"id": "t:bed", "corpus": "t", "path": str(noise), "offset_s": 0.0, "duration_s": 0.5,
           "sample_rate": 16000, "labels": [], "words": [], "license": ""}
    plan = EpisodePlan(segments=[
        SegmentPlan(clip=bed, start_s=0.0, kind="noise", role="background", gain_db=-30, loop_to_end=True),
        SegmentPlan(clip=loud, start_s=0.0, kind="sound", role="environment", gain_db=0),
        SegmentPlan(clip=quiet, start_s=4.0, kind="sound", role="environment", gain_db=-12)], turns=[])
    r = render(plan)
    x, _ = sf.read(io.BytesIO(r.flac), dtype="float32")
    a = active_level_db(x[int(0.5 * 16000):int(0.7 * 16000)])
    b = active_level_db(x[int(4.1 * 16000):int(4.3 * 16000)])
    assert abs((a - b) - 12) < 1.0
    assert r.segments[0]["end_s"] == r.duration_s  # the bed covers the whole episode
    tail = x[-1600:]
    assert 10 * np.log10(np.mean(tail ** 2)) > -60  # ... including its last chunk, looped from 0.5 s of noise


def test_snr_is_measured_on_the_mix(tmp_path):
    beep = _beep_clip(tmp_path, 16000, name="snr")
    noise = tmp_path / "white.wav"
    sf.write(noise, (np.random.default_rng(1).standard_normal(16000 * 3) * 0.1).astype(np.float32), 16000)
    bed = {"id": "t:white", "corpus": "t", "path": str(noise), "offset_s": 0.0, "duration_s": 3.0,
           "sample_rate": 16000, "labels": [], "words": [], "license": ""}
    for gap in (0.0, 10.0, 20.0):
        plan = EpisodePlan(segments=[
            SegmentPlan(clip=bed, start_s=0.0, kind="noise", role="background", gain_db=-gap, loop_to_end=True),
            SegmentPlan(clip=beep, start_s=1.0, kind="sound", role="environment", attrs={"target_snr_db": gap})],
            turns=[])
        r = render(plan)
        assert r.segments[1]["snr_db"] == pytest.approx(gap, abs=0.5)
        # the bed is measured over the whole episode, where the 0.2 s beep is a sixteenth of the time
        assert r.segments[0]["snr_db"] == pytest.approx(-gap + 10 * np.log10(r.duration_s / 0.2), abs=0.5)
        assert json.loads(r.segments[1]["attrs"]) == {"target_snr_db": gap}
    # a target SNR moves the segment's level over what lies under it, whatever its gain said
    for gap in (-3.0, 7.5):
        plan = EpisodePlan(segments=[
            SegmentPlan(clip=bed, start_s=0.0, kind="noise", role="background", gain_db=-10, loop_to_end=True),
            SegmentPlan(clip=beep, start_s=1.0, kind="sound", role="environment", gain_db=+6, snr_db=gap)], turns=[])
        r = render(plan)
        assert r.segments[1]["snr_db"] == pytest.approx(gap, abs=0.05)
        assert r.segments[1]["gain_db"] == pytest.approx(gap - 10, abs=0.5)
    alone = render(EpisodePlan(segments=[SegmentPlan(clip=beep, start_s=0.0, kind="sound", role="environment")], turns=[]))
    assert alone.segments[0]["snr_db"] is None  # nothing else audible: no SNR to speak of


def test_a_room_impulse_response_reverberates_a_clip_without_delaying_it(tmp_path):
    beep = _beep_clip(tmp_path, 16000, at_s=0.5, dur_s=2.0, name="dry")
    sr, rng = 16000, np.random.default_rng(3)
    t = np.arange(int(0.6 * sr)) / sr
    h = (rng.standard_normal(len(t)) * np.exp(-t / 0.12) * 0.3).astype(np.float32)
    h[: int(0.005 * sr)] = 0
    h[int(0.005 * sr)] = 1.0  # the direct path, 5 ms in: cut, so the clip is not delayed
    sf.write(tmp_path / "rir.wav", h, sr)
    rir = {"id": "t:room1", "corpus": "t", "path": str(tmp_path / "rir.wav"), "offset_s": 0.0,
           "duration_s": len(h) / sr, "sample_rate": sr, "labels": [], "words": [], "license": ""}
    dry = render(EpisodePlan(segments=[SegmentPlan(clip=beep, start_s=1.0, kind="sound", role="environment")], turns=[]))
    wet = render(EpisodePlan(segments=[SegmentPlan(clip=beep, start_s=1.0, kind="sound", role="environment",
                                                   rir=rir)], turns=[]))
    x, _ = sf.read(io.BytesIO(dry.flac))
    y, _ = sf.read(io.BytesIO(wet.flac))
    onset = lambda s: np.argmax(np.abs(s) > 0.05) / sr  # noqa: E731
    assert abs(onset(y) - onset(x)) < 0.002  # the direct path is where the dry sound was
    tail = slice(int(1.75 * sr), int(2.2 * sr))  # after the 0.2 s beep (1.5-1.7 s), still inside the clip
    assert np.mean(y[tail] ** 2) > 100 * (np.mean(x[tail] ** 2) + 1e-12)  # the room rings on
    assert json.loads(wet.segments[0]["attrs"]) == {"rir": "t:room1"}
    silent = {**rir, "id": "t:dead", "path": str(tmp_path / "dead.wav"), "duration_s": 800 / sr}
    sf.write(tmp_path / "dead.wav", np.zeros(800, np.float32), sr)
    from streamaudio.plan import RenderError

    with pytest.raises(RenderError, match="silent"):
        render(EpisodePlan(segments=[SegmentPlan(clip=beep, start_s=0.0, kind="sound", role="environment",
                                                 rir=silent)], turns=[]))


def test_instruction_banks_have_at_least_20_paraphrases():
    import yaml

    from streamaudio.resources import MANIFESTS_DIR

    for path in sorted((MANIFESTS_DIR / "instructions").glob("*.yaml")):
        prompts = yaml.safe_load(path.read_text())["system_prompts"]
        assert len(prompts) >= 20, path
        assert len(set(prompts)) == len(prompts), path


def test_pool_sampling_with_a_predicate():
    from streamaudio.plan import PlanError

    rows = [{"id": str(i), "labels": ["a" if i % 2 else "b"], "ok": i % 10 != 0} for i in range(400)]
    pool = Pool("p", rows)
    fits = lambda r: r["ok"]
    for seed in range(20):
        got = pool.sample(np.random.default_rng(seed), 8, where=fits)
        assert len(got) == 8 and len({r["id"] for r in got}) == 8 and all(fits(r) for r in got)
        again = pool.sample(np.random.default_rng(seed), 8, where=fits)
        assert got == again  # seeded: the same clips every time
    rare = lambda r: r["id"] in {"7", "123"}  # too rare for rejection sampling: the scan finds them
    assert {pool.choice(np.random.default_rng(s), where=rare)["id"] for s in range(30)} == {"7", "123"}
    assert {r["id"] for r in pool.sample(np.random.default_rng(0), 2, where=rare)} <= {"7", "123"}
    with pytest.raises(PlanError):
        pool.choice(np.random.default_rng(0), where=lambda r: False)
    assert all("a" in r["labels"] for r in pool.with_label("a")) and len(pool.with_label("a")) == 200
    assert pool.with_label("zzz") == []
    assert [r["id"] for r in pool.with_label("b")][:3] == ["0", "2", "4"]  # the index keeps manifest order


def test_rare_predicates_and_labels_do_not_read_the_whole_pool():
    rows = [{"id": str(i), "labels": ["common"] + (["rare"] if i % 100 == 7 else [])} for i in range(20000)]
    pool = Pool("big", rows)
    seen = []

    def rare(r):  # a closure (over `seen`): a predicate with state is never remembered
        seen.append(r["id"])
        return r["labels"][-1] == "rare"

    picks = set()
    for s in range(40):
        seen.clear()
        picks.add(pool.choice(np.random.default_rng(s), where=rare)["id"])
        assert len(seen) < 5000  # 1% fit: ~100 rows read per hit in random order, not 20000
    assert len(picks) > 30 and all(int(p) % 100 == 7 for p in picks)  # spread over the fitting rows
    got = pool.sample(np.random.default_rng(1), 5, where=rare)
    assert len({r["id"] for r in got}) == 5 and all(r["labels"][-1] == "rare" for r in got)
    lazy = pool.with_label("common")
    assert len(lazy) == 20000 and len(pool._rows) < 5000  # asking for a label materialises nothing
    assert lazy[3]["id"] == "3" and [r["id"] for r in lazy[:2]] == ["0", "1"]
    assert [r["id"] for r in pool.with_label("rare")][:2] == ["7", "107"]


def test_downmix_is_the_mean_of_the_channels():
    from streamaudio.audio import downmix

    rng = np.random.default_rng(0)
    for ch in (1, 2, 3):
        x = rng.standard_normal((4000, ch)).astype(np.float32)
        y = downmix(x)
        assert y.shape == (4000,) and y.dtype == np.float32
        assert np.allclose(y, x.mean(axis=1), atol=1e-6)


def _decaying_words_clip(tmp_path, aligned_last_end_s: float):
    """Two harmonic 'words' (0.3-0.7 s, 0.9-1.5 s), the second ringing on with a decay to ~1.8 s,
    as a voiced word's release does; the timings claim the second word ends at
    ``aligned_last_end_s`` (an aligner that ends words early)."""
    sr = 16000
    t = np.arange(int(2.4 * sr)) / sr
    voice = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 420, 560), 1)).astype(np.float32)
    env = np.zeros_like(t)
    env[(t >= 0.3) & (t < 0.7)] = 1.0
    env[(t >= 0.9) & (t < 1.5)] = 1.0
    ring = t >= 1.5
    env[ring] = np.exp(-(t[ring] - 1.5) / 0.06)
    x = (0.3 * voice * env).astype(np.float32)
    path = tmp_path / "words.wav"
    sf.write(path, x, sr)
    return {"id": "t:words", "corpus": "t", "path": str(path), "offset_s": 0.0, "duration_s": 2.4, "sample_rate": sr,
            "text": "one two", "language": "en", "labels": [], "license": "",
            "words": [{"text": "one", "start_s": 0.3, "end_s": 0.7}, {"text": "two", "start_s": 0.9, "end_s": aligned_last_end_s}]}


@pytest.mark.parametrize("room", [False, True])
def test_a_reply_waits_until_its_utterance_is_no_longer_heard(tmp_path, room):
    sr = SAMPLE_RATE
    words = _decaying_words_clip(tmp_path, aligned_last_end_s=1.45)
    noise = tmp_path / "bed.wav"
    sf.write(noise, (np.random.default_rng(5).standard_normal(sr * 6) * 0.1).astype(np.float32), sr)
    bed = {"id": "t:bed", "corpus": "t", "path": str(noise), "offset_s": 0.0, "duration_s": 6.0,
           "sample_rate": sr, "labels": [], "words": [], "license": ""}
    rir = None
    if room:
        t = np.arange(int(0.5 * sr)) / sr
        h = (np.random.default_rng(2).standard_normal(len(t)) * np.exp(-t / 0.08) * 0.2).astype(np.float32)
        h[0] = 1.0
        sf.write(tmp_path / "rir.wav", h, sr)
        rir = {"id": "t:room", "corpus": "t", "path": str(tmp_path / "rir.wav"), "offset_s": 0.0,
               "duration_s": len(h) / sr, "sample_rate": sr, "labels": [], "words": [], "license": ""}
    speech = SegmentPlan(clip=words, start_s=1.0, kind="speech", role="user", gain_db=0.0, rir=rir)
    bed_seg = SegmentPlan(clip=bed, start_s=0.0, kind="noise", role="background", gain_db=-25.0, loop_to_end=True)
    planned_ev = 1.0 + 1.45
    plan = EpisodePlan(segments=[bed_seg, speech], min_duration_s=6.0, turns=[
        TurnPlan(trigger_s=1.7, kind="respond", text="one", evidence=[speech], evidence_s=1.7),  # at a word end
        TurnPlan(trigger_s=planned_ev + 0.2, kind="respond", text="one two", evidence=[speech])])
    r = render(plan)
    partial, whole = r.turns
    assert partial["evidence_s"] == 1.7 and partial["trigger_s"] == 1.7  # a word end inside the utterance stands
    assert whole["evidence_s"] > planned_ev + 0.05  # the ring after the aligned end is heard
    assert whole["trigger_s"] - whole["evidence_s"] == pytest.approx(0.2)  # the recipe's latency is kept

    # measured apart from the renderer's own rule: the speech and the bed rendered alone, summed
    def alone(seg):
        return sf.read(io.BytesIO(render(EpisodePlan(segments=[seg], turns=[], min_duration_s=6.0)).flac),
                       dtype="float64")[0]

    s, b = alone(speech), alone(bed_seg)

    def residue(t0):
        a = int(round(t0 * sr))
        return 10 * np.log10(np.sum((s + b)[a:a + sr // 10] ** 2) / np.sum(b[a:a + sr // 10] ** 2))

    assert residue(planned_ev) > 3.0  # the fixture is a real test: the utterance was still heard there
    assert residue(whole["evidence_s"]) <= 1.0 and residue(whole["trigger_s"]) <= 1.0
    row = episode_row(plan_to_dict(plan), episode_id="asr_utterance-train-000000", subtask="asr_utterance",
                      ability="real_time_asr", split="train", recipe_version="1", seed=0, chunk_s=0.4)
    assert row["turns"][1]["evidence_s"] == round(whole["evidence_s"], 4) and episode_violations(row) == []


def test_flac_from_int16_is_the_same_bytes_as_libsndfile_from_float():
    # render() hands libsndfile int16 (to_pcm16) for its cheaper encode: the shard bytes must not move
    from streamaudio.render.mix import FLAC_LEVEL, PEAK_LIMIT, to_pcm16

    rng = np.random.default_rng(3)
    ties = (np.arange(-40, 40, dtype=np.float32) + np.float32(0.5)) / np.float32(32768)  # half-LSB: round to even
    x = np.concatenate([rng.uniform(-PEAK_LIMIT, PEAK_LIMIT, 48000).astype(np.float32), ties,
                        np.float32([PEAK_LIMIT, -PEAK_LIMIT, 0.0, 1e-9])])

    def flac(y):
        buf = io.BytesIO()
        sf.write(buf, y, SAMPLE_RATE, format="FLAC", subtype="PCM_16", compression_level=FLAC_LEVEL)
        return buf.getvalue()

    assert flac(to_pcm16(x)) == flac(x)
