"""The join-artifact audit (streamaudio.audit.joins): it finds seams that give replies away, and
stays at chance where the quiet between clips carries no such information."""
import io
import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from scipy.signal import lfilter

from streamaudio.audit import joins
from streamaudio.format import CHUNK_S, EPISODE_SCHEMA, SAMPLE_RATE, chunk_of

SR = SAMPLE_RATE
DURATION_S = 16.0


def _seg(start, end, kind, role, words=(), attrs="{}"):
    return {"start_s": start, "end_s": end, "kind": kind, "role": role, "text": " ".join(w["text"] for w in words),
            "language": "en" if kind == "speech" else "", "labels": [], "words": list(words), "gain_db": 0.0,
            "corpus": "synthetic", "clip_id": f"synthetic:{kind}:{start:.3f}", "license": "test", "snr_db": None,
            "attrs": attrs}


def _flac(x):
    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1, 1), SR, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def _noise(rng, n, level_db, pole):
    """Stationary coloured noise: white through a one-pole low-pass (pole 0 = white)."""
    y = lfilter([1.0], [1.0, -pole], rng.standard_normal(n))
    return y * 10 ** (level_db / 20) / np.sqrt(np.mean(y ** 2))


def _bed(rng, n, level_db):
    """A bed that changes over the episode, as the noise tracks do: pieces of 3-6 s, each with
    its own colour and a level within +-5 dB, joined by 1 s equal-power crossfades."""
    xf = SR
    out = _noise(rng, n, level_db, 0.6)
    t = int(rng.uniform(3, 6) * SR)
    while t < n:
        m = min(n - t, int(rng.uniform(3, 6) * SR) + xf)
        piece = _noise(rng, m, level_db + rng.uniform(-5, 5), rng.uniform(-0.3, 0.95))
        k = min(xf, m)
        ramp = np.linspace(0, 1, k)
        out[t:t + k] = out[t:t + k] * np.sqrt(1 - ramp) + piece[:k] * np.sqrt(ramp)
        out[t + k:t + m] = piece[k:]
        t += m - xf if m > xf else m
    return out


def _word(rng, n):
    """A voiced 'word' that is exactly silent outside its timing (no release to leak past it)."""
    t = np.arange(n) / SR
    f0 = rng.uniform(110, 230)
    y = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h for h in range(1, 6))
    return 0.08 * y * np.hanning(n)


def synth_episode(rng, eid, subtask, joins_kind, replies):
    """A 16 s episode: a continuous, slowly changing bed and spoken 'clips' one after another.

    joins_kind "hard": each clip carries its own room tone (its colour and a level 12 dB over the
    bed) that starts and stops with the clip without a fade. "seamless": the clips are only
    their words on the one bed. replies "after_clip": a respond turn right after each clip ends;
    "random": at a random moment in the quiet between clips; "none": stay-silent turns only.
    """
    n = int(DURATION_S * SR)
    x = _bed(rng, n, -52.0)
    segments = [_seg(0.0, DURATION_S, "noise", "background")]
    turns = []
    t = rng.uniform(0.5, 1.2)
    gaps = []
    while True:
        n_words = rng.integers(3, 6)
        lead, tail = rng.uniform(0.15, 0.4), rng.uniform(0.3, 0.7)
        durs, pauses = rng.uniform(0.15, 0.35, n_words), rng.uniform(0.08, 0.35, n_words - 1)
        length = lead + durs.sum() + pauses.sum() + tail
        if t + length + 2.2 > DURATION_S:  # room for the gap and a reply after the clip
            break
        words, w0 = [], t + lead
        for k in range(n_words):
            a, b = int(round(w0 * SR)), int(round((w0 + durs[k]) * SR))
            x[a:b] += _word(rng, b - a)
            words.append({"text": f"w{k}", "start_s": round(a / SR, 4), "end_s": round(b / SR, 4)})
            w0 += durs[k] + (pauses[k] if k < n_words - 1 else 0)
        a, b = int(round(t * SR)), int(round((t + length) * SR))
        if joins_kind == "hard":
            x[a:b] += _noise(rng, b - a, -40.0, rng.uniform(-0.5, 0.95))
        seg_end = round(b / SR, 4)
        segments.append(_seg(round(a / SR, 4), seg_end, "speech", "user", words))
        gap = rng.uniform(0.8, 2.0)
        gaps.append((seg_end, seg_end + gap))
        last = words[-1]["end_s"]
        if replies == "after_clip":
            trig = seg_end + rng.uniform(0.0, 0.15)
        elif replies == "random":
            trig = rng.uniform(seg_end, seg_end + gap)
        else:
            trig = last + 0.2
        trig = min(trig, last + 2.0)
        kind = "respond" if replies != "none" else "stay_silent"
        turns.append({"trigger_s": round(trig, 4), "chunk": chunk_of(trig), "kind": kind,
                      "text": "a reply" if kind == "respond" else "", "emotion": "normal", "tool_call": "",
                      "evidence_s": last if replies != "random" else min(last, trig),
                      "evidence": [len(segments) - 1]})
        t += length + gap
    labels = [0] * int(round(DURATION_S / CHUNK_S))
    for tu in turns:
        if tu["kind"] == "respond":
            labels[tu["chunk"]] = 1
    return {"id": eid, "ability": "test", "subtask": subtask, "split": "train", "language": "en",
            "system_prompt": "", "audio": {"bytes": _flac(x), "path": f"{eid}.flac"}, "sample_rate": SR,
            "duration_s": DURATION_S, "chunk_s": CHUNK_S, "segments": segments, "turns": turns,
            "chunk_labels": labels,
            "provenance": {"toolkit_version": "test", "recipe": subtask, "recipe_version": "1", "seed": 0,
                           "text_writer": "", "tts": "", "aligner": "", "plan_sha": ""}}


# sub-task -> (joins, replies, episodes)
SUBTASKS = {"hard_joins": ("hard", "after_clip", 14),
            "seamless_after_clip": ("seamless", "after_clip", 14),
            "seamless_random": ("seamless", "random", 14),
            "no_replies": ("seamless", "none", 4)}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("joins")
    rng = np.random.default_rng(12)
    for st, (kind, replies, n) in SUBTASKS.items():
        rows = [synth_episode(rng, f"{st}-train-{i:06d}", st, kind, replies) for i in range(n)]
        (out / "data" / st).mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=EPISODE_SCHEMA), out / "data" / st / "train-00000-of-00001.parquet")
    return out


@pytest.fixture(scope="module")
def report(dataset):
    # two deals of the folds, not four: the test checks the method, repeats only average out fold luck
    return joins.audit_dataset(dataset, n_boot=300, repeats=2)


def test_hard_joins_give_the_reply_away(report):
    s = report.subtasks["hard_joins"]
    assert s.auc >= 0.8, joins.format_table(report)
    assert s.ci[0] <= s.auc <= s.ci[1]


@pytest.mark.parametrize("subtask", ["seamless_after_clip", "seamless_random"])
def test_seamless_joins_score_at_chance(report, subtask):
    # after_clip: replies at the same places as with hard joins, so the audit is not scoring the
    # end of speech itself; random: replies anywhere in the quiet
    s = report.subtasks[subtask]
    assert s.auc is not None and s.positive >= joins.MIN_CLASS_WINDOWS
    assert abs(s.auc - 0.5) <= 0.15, joins.format_table(report)


def test_too_few_positives_is_said_not_scored(report):
    s = report.subtasks["no_replies"]
    assert s.auc is None and s.positive == 0 and "too few" in s.note


def test_report_counts_and_json(report, dataset):
    assert report.overall.episodes == sum(n for _, _, n in SUBTASKS.values())
    assert report.overall.windows == sum(s.windows for s in report.subtasks.values())
    assert abs(report.audio_s - DURATION_S * report.overall.episodes) < 1e-6
    d = json.loads(json.dumps(report.to_dict()))
    assert d["subtasks"]["no_replies"]["auc"] is None
    assert set(d["subtasks"]) == set(SUBTASKS)
    table = joins.format_table(report)
    assert all(st in table for st in SUBTASKS) and "overall" in table


def test_quiet_windows_keep_clear_of_words_events_and_tails():
    row = {"duration_s": 2.0, "segments": [
        _seg(0.0, 2.0, "noise", "background"),
        _seg(0.3, 1.5, "speech", "user", [{"text": "a", "start_s": 0.4, "end_s": 0.6},
                                          {"text": "b", "start_s": 0.95, "end_s": 1.2}]),
        # the clip runs 1.5-1.9 s, the event in it 1.6-1.7 s: its padding is audited
        _seg(1.5, 1.9, "sound", "environment", attrs='{"active_span_s": [1.6, 1.7]}')],
        # the utterance is heard until 1.28 s (a reverberant tail past its last word)
        "turns": [{"trigger_s": 1.4, "evidence_s": 1.28, "evidence": [1], "kind": "respond"}]}
    # words +-50 ms: 0.35-0.65, 0.90-1.25; tail 1.20-1.33; event 1.55-1.75
    blocked = {3, 4, 5, 6, 9, 10, 11, 12, 13, 15, 16, 17}
    want = [k / 10 for k in range(20) if k not in blocked]
    assert np.allclose(joins.quiet_window_starts(row), want)


def test_sound_without_an_active_span_is_foreground_throughout():
    row = {"duration_s": 1.2, "segments": [_seg(0.2, 0.7, "music", "environment")], "turns": []}
    assert np.allclose(joins.quiet_window_starts(row), [0.0, 0.8, 0.9, 1.0, 1.1])


def test_labels_look_at_the_windows_chunk_and_the_next():
    starts = np.arange(0, 2.4, 0.1)  # 6 chunks of 4 windows
    got = joins.window_labels(starts, [0, 0, 1, 0, 0, 0], CHUNK_S)
    assert got.tolist() == [0] * 4 + [1] * 8 + [0] * 12


def test_features_see_a_cut_in_the_floor():
    rng = np.random.default_rng(3)
    x = _noise(rng, SR, -50.0, 0.5)
    x[8000:] = _noise(rng, SR - 8000, -30.0, 0.5)  # the floor jumps 20 dB at 0.5 s, no fade
    f = joins.window_features(x.astype(np.float32), np.array([0.3, 0.4, 0.5, 0.6]))
    col = {name: f[:, i] for i, name in enumerate(joins.FEATURES)}
    assert math.isnan(col["d_level_db"][0])
    assert col["d_level_db"][2] == pytest.approx(20.0, abs=1.5)
    assert abs(col["d_level_db"][1]) < 1.5 and abs(col["d_level_db"][3]) < 1.5
    assert col["level_db"][0] == pytest.approx(-50.0, abs=1.5)


def test_features_see_a_click():
    rng = np.random.default_rng(4)
    x = _noise(rng, SR, -50.0, 0.9)
    x[8000:] += 0.03  # a DC step (a waveform cut off mid-cycle) at 0.5 s, 20 dB over the floor's RMS
    f = joins.window_features(x.astype(np.float32), np.array([0.3, 0.4, 0.5, 0.6]))
    step = f[:, joins.FEATURES.index("step_db")]
    assert step[2] > max(step[0], step[1], step[3]) + 10  # the step is the sample before 0.5 s to the first after


def test_change_features_only_from_the_window_just_before():
    # a quiet window after a foreground stretch is not compared with the quiet before the
    # stretch: how far the bed drifted meanwhile measures the stretch's length, not a seam
    rng = np.random.default_rng(5)
    x = _noise(rng, SR, -50.0, 0.5)
    starts = np.array([0.0, 0.1, 0.5, 0.6])
    assert joins.continues_run(starts).tolist() == [False, True, False, True]
    d_level = joins.window_features(x.astype(np.float32), starts)[:, joins.FEATURES.index("d_level_db")]
    assert np.isnan(d_level[[0, 2]]).all() and not np.isnan(d_level[[1, 3]]).any()


def test_auc_compares_windows_of_the_same_kind_only():
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    groups = np.array([0, 0, 0, 0, 1, 1, 1, 1])  # starts a quiet run / continues one
    by_group = groups.astype(float)  # a score that only tells the groups apart
    assert joins.roc_auc(labels, by_group) == 0.75  # 9 of 16 pairs won, 6 tied
    assert joins.roc_auc(labels, by_group, groups) == 0.5
    within = np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.7, 0.6, 0.1])
    assert joins.roc_auc(labels, within, groups) == 1.0


def test_bootstrap_pair_counts_equal_the_rank_auc():
    rng = np.random.default_rng(1)
    labels = [(rng.random(40) < 0.3).astype(np.int8) for _ in range(6)]
    scores = [np.round(rng.random(40), 1) + 0.2 * lab for lab in labels]  # ties on purpose
    w = np.array([2, 0, 1, 1, 0, 3])
    idx = np.repeat(np.arange(6), w)
    want = joins.roc_auc(np.concatenate([labels[i] for i in idx]), np.concatenate([scores[i] for i in idx]))
    c = joins._pair_counts(labels, scores)
    n_pos = np.array([lab.sum() for lab in labels])
    n_neg = np.array([(lab == 0).sum() for lab in labels])
    assert w @ c @ w / ((w @ n_pos) * (w @ n_neg)) == pytest.approx(want)


def test_bad_input_is_a_clear_error(dataset, tmp_path):
    with pytest.raises(joins.AuditError, match="no shards of sub-task"):
        joins.audit_dataset(dataset, subtasks=["not_a_subtask"])
    with pytest.raises(joins.AuditError, match="no shards under data"):
        joins.audit_dataset(tmp_path)
    with pytest.raises(joins.AuditError, match="does not decode"):
        joins.decode_audio({"id": "x", "audio": {"bytes": b"not a flac", "path": ""}})
