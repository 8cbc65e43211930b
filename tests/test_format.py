import json

import pyarrow as pa
from hypothesis import given, strategies as st

from streamaudio.format import CHUNK_S, EPISODE_SCHEMA, SCHEMAS_DIR, chunk_of, round_up_to_chunk
from streamaudio.render.label import episode_violations, label_turns

PRIMS = {"string": pa.string(), "binary": pa.binary(), "float64": pa.float64(), "float32": pa.float32(),
         "int8": pa.int8(), "int32": pa.int32(), "int64": pa.int64()}


def arrow_from_json(node: dict) -> pa.DataType:
    t = node["x-arrow-type"]
    if t == "struct":
        return pa.struct([pa.field(k, arrow_from_json(v)) for k, v in node["properties"].items()])
    if t == "list":
        return pa.list_(arrow_from_json(node["items"]))
    return PRIMS[t]


def test_json_schema_and_arrow_schema_say_the_same():
    schema = json.loads((SCHEMAS_DIR / "episode.schema.json").read_text())
    from_json = pa.schema(list(arrow_from_json(schema)))
    assert from_json.equals(EPISODE_SCHEMA), f"\njson:  {from_json}\narrow: {EPISODE_SCHEMA}"
    # every struct field is required: a column the JSON schema lets go missing would not be in the Arrow rows
    def walk(node):
        if node.get("x-arrow-type") == "struct":
            assert set(node["required"]) == set(node["properties"])
            for v in node["properties"].values():
                walk(v)
        elif node.get("x-arrow-type") == "list":
            walk(node["items"])
    walk(schema)


def test_schema_sync_detects_a_difference():
    schema = json.loads((SCHEMAS_DIR / "episode.schema.json").read_text())
    schema["properties"]["turns"]["items"]["properties"]["chunk"]["x-arrow-type"] = "int64"
    assert not pa.schema(list(arrow_from_json(schema))).equals(EPISODE_SCHEMA)


times = st.floats(min_value=0, max_value=3600, allow_nan=False, allow_infinity=False)


@given(times)
def test_chunk_rule_picks_first_chunk_ending_at_or_after_t(t):
    k = chunk_of(t)
    assert k >= 0
    assert (k + 1) * CHUNK_S >= t - 1e-6 * CHUNK_S  # the chunk ends at or after t
    if k > 0:
        assert k * CHUNK_S < t + 1e-6 * CHUNK_S  # the chunk before ends before t


@given(st.integers(min_value=1, max_value=9000))
def test_turn_on_a_boundary_belongs_to_the_chunk_ending_there(m):
    assert chunk_of(m * CHUNK_S) == m - 1
    assert chunk_of(m * CHUNK_S + 0.001) == m


@given(times, times)
def test_chunk_rule_is_monotonic(a, b):
    lo, hi = sorted((a, b))
    assert chunk_of(lo) <= chunk_of(hi)


@given(st.floats(min_value=0.001, max_value=600, allow_nan=False))
def test_round_up_to_chunk(t):
    d = round_up_to_chunk(t)
    k = d / CHUNK_S
    assert abs(k - round(k)) < 1e-9 and d >= t - 1e-6 and d - t < CHUNK_S + 1e-6


@given(st.lists(st.tuples(st.floats(min_value=0, max_value=30, allow_nan=False), st.booleans()), max_size=12))
def test_labels_follow_respond_turns(turns):
    duration = round_up_to_chunk(max([t for t, _ in turns] + [0.4]))
    plans = [{"trigger_s": t, "kind": "respond" if r else "stay_silent", "text": "hi" if r else "", "emotion": "normal",
              "tool_call": "", "evidence": [], "evidence_s": t} for t, r in turns]
    out, labels = label_turns(plans, duration)
    assert len(labels) == round(duration / CHUNK_S)
    respond_chunks = {t["chunk"] for t in out if t["kind"] == "respond"}
    assert {i for i, v in enumerate(labels) if v} == respond_chunks
    seg = {"start_s": 0.0, "end_s": duration, "kind": "noise", "role": "background", "words": []}
    for t in out:
        t["evidence"] = [0]
    row = {"subtask": "asr_utterance", "ability": "real_time_asr", "split": "train", "sample_rate": 16000,
           "chunk_s": 0.4, "duration_s": duration, "chunk_labels": labels, "segments": [seg], "turns": out}
    problems = episode_violations(row)
    n_respond = sum(1 for t in out if t["kind"] == "respond")
    shared = n_respond != len(respond_chunks)
    assert bool(problems) == shared, problems


def test_violations_name_each_broken_rule():
    base = {"subtask": "asr_utterance", "ability": "real_time_asr", "split": "train", "sample_rate": 16000,
            "chunk_s": 0.4, "duration_s": 2.0, "chunk_labels": [0, 0, 1, 0, 0],
            "segments": [{"start_s": 0.1, "end_s": 1.5, "kind": "speech", "role": "user", "words": [
                {"text": "a", "start_s": 0.2, "end_s": 0.5}, {"text": "b", "start_s": 0.6, "end_s": 0.9}]}],
            "turns": [{"trigger_s": 1.0, "chunk": 2, "kind": "respond", "text": "a b", "emotion": "normal", "tool_call": "",
                       "evidence_s": 0.9, "evidence": [0]}]}
    assert episode_violations(base) == []
    turn = base["turns"][0]
    cases = {
        "whole number of chunks": {"duration_s": 2.1},
        "chunk rule": {"turns": [{**base["turns"][0], "chunk": 3}]},
        "empty text": {"turns": [{**base["turns"][0], "text": " "}]},
        "disagree": {"chunk_labels": [0, 1, 0, 0, 0]},
        "not inside": {"segments": [{**base["segments"][0], "end_s": 2.5}]},
        "outside its segment": {"segments": [{**base["segments"][0], "words": [{"text": "a", "start_s": 0.0, "end_s": 0.5}]}]},
        "out of order": {"segments": [{**base["segments"][0], "words": list(reversed(base["segments"][0]["words"]))}]},
        "share chunk": {"turns": base["turns"] * 2},
        "ability": {"ability": "voice_chatting"},
        # the evidence rule
        "not within": {"turns": [{**turn, "evidence_s": 1.2}]},  # a reply before what it answers was heard
        "evidence_s + 2.0": {"turns": [{**turn, "trigger_s": 3.0, "chunk": 7}], "duration_s": 3.2,
                             "chunk_labels": [0] * 7 + [1]},  # long after
        "not a segment": {"turns": [{**turn, "evidence": [3]}]},
        "neither a word end": {"turns": [{**turn, "evidence_s": 0.7}]},  # mid-word, not after the last word
        "after evidence_s": {"turns": [{**turn, "evidence_s": 0.05, "trigger_s": 0.05, "chunk": 0}],
                             "chunk_labels": [1, 0, 0, 0, 0]},
        "names no evidence and there is no system prompt": {"turns": [{**turn, "evidence": []}]},
        "stay_silent turn names no evidence": {"turns": [{**turn, "kind": "stay_silent", "text": "", "evidence": []}],
                                               "chunk_labels": [0] * 5},
    }
    for needle, change in cases.items():
        problems = episode_violations({**base, **change})
        assert any(needle in p for p in problems), (needle, problems)


def test_a_partial_turn_may_end_at_a_word_and_a_prompt_only_turn_needs_no_evidence():
    seg = {"start_s": 0.1, "end_s": 1.5, "kind": "speech", "role": "user", "words": [
        {"text": "a", "start_s": 0.2, "end_s": 0.5}, {"text": "b", "start_s": 0.6, "end_s": 0.9}]}
    turn = {"trigger_s": 0.5, "chunk": 1, "kind": "respond", "text": "a", "emotion": "normal", "tool_call": "",
            "evidence_s": 0.5, "evidence": [0]}
    row = {"subtask": "asr_incremental", "ability": "real_time_asr", "split": "train", "sample_rate": 16000,
           "chunk_s": 0.4, "duration_s": 2.0, "chunk_labels": [0, 1, 0, 0, 0], "segments": [seg], "turns": [turn],
           "system_prompt": ""}
    assert episode_violations(row) == []
    bare = {**row, "turns": [{**turn, "evidence": []}]}
    assert episode_violations(bare) and episode_violations({**bare, "system_prompt": "Say hello at once."}) == []


def test_the_stored_hf_features_are_what_datasets_computes():
    """Builds read the features from schemas/ instead of importing `datasets`; they must agree."""
    from streamaudio.format import compute_hf_features_data, hf_features_data

    assert hf_features_data() == json.loads(json.dumps(compute_hf_features_data()))
