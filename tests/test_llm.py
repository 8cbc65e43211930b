import json

import pytest

from streamaudio.text.devserver import DevServer
from streamaudio.text.llm import LLMClient, LLMConfig, LLMError

SCHEMA = {"type": "object", "additionalProperties": False, "required": ["spoken"],
          "properties": {"spoken": {"type": "string", "minLength": 1}}}


@pytest.fixture()
def server():
    with DevServer(slow_s=1.5, retry_after_s=0.2) as srv:
        yield srv


def client(server, tmp_path, **kw):
    cfg = LLMConfig(base_url=server.base_url, model="dev-model", timeout_s=0.5, backoff_s=0.01, **kw)
    return LLMClient(cfg, cache_dir=tmp_path / "cache")


def ask(c, text="What is **15%** of 240?"):
    return c.complete_json("spoken_form", [{"role": "system", "content": "Rewrite for speech."},
                                           {"role": "user", "content": f"TEXT: {text}"}], SCHEMA)


def test_normal_answer_validates_and_is_counted(server, tmp_path):
    c = client(server, tmp_path)
    value = ask(c)
    (call,) = server.log
    # the client asked for structured output with our schema, and returns what the model said
    assert call["request"]["response_format"]["json_schema"]["schema"] == SCHEMA
    assert call["request"]["model"] == "dev-model" and call["request"]["temperature"] == 0.0
    assert value == json.loads(call["content"])
    s = c.usage.as_dict()["spoken_form"]
    assert s["requests"] == 1 and s["calls"] == 1 and s["prompt_tokens"] > 0 and s["completion_tokens"] > 0


def test_a_rerun_makes_zero_requests(server, tmp_path):
    first = ask(client(server, tmp_path))
    before = server.requests
    c2 = client(server, tmp_path)
    assert ask(c2) == first
    assert server.requests == before
    assert c2.usage.as_dict()["spoken_form"]["cache_hits"] == 1
    # a different prompt, model or schema is a different key
    ask(c2, "Another question?")
    assert server.requests == before + 1


def test_429_honours_retry_after(server, tmp_path, monkeypatch):
    waits = []
    monkeypatch.setattr("streamaudio.text.llm.time.sleep", lambda s: waits.append(s))
    server.faults.extend(["429"])
    c = client(server, tmp_path)
    assert ask(c)["spoken"]
    assert waits == [pytest.approx(0.2)]
    s = c.usage.as_dict()["spoken_form"]
    assert s["requests"] == 2 and s["retries"] == 1


@pytest.mark.parametrize("fault", ["500", "slow"])
def test_server_errors_and_timeouts_are_retried(server, tmp_path, fault):
    server.faults.extend([fault, fault])
    c = client(server, tmp_path)
    assert ask(c)["spoken"]
    s = c.usage.as_dict()["spoken_form"]
    assert s["requests"] == 3 and s["retries"] == 2 and s["failures"] == 0


@pytest.mark.parametrize("fault", ["malformed", "schema"])
def test_invalid_replies_are_repaired(server, tmp_path, fault):
    server.faults.extend([fault])
    c = client(server, tmp_path)
    value = ask(c)
    bad, good = server.log
    # the repair turn shows the model its own answer and what was wrong with it
    msgs = good["request"]["messages"]
    assert msgs[-2] == {"role": "assistant", "content": bad["content"]}
    assert "does not match the required JSON Schema" in msgs[-1]["content"]
    assert ("not valid JSON" if fault == "malformed" else "required property") in msgs[-1]["content"]
    assert value == json.loads(good["content"]) and set(value) == {"spoken"}
    s = c.usage.as_dict()["spoken_form"]
    assert s["repairs"] == 1 and s["requests"] == 2


@pytest.mark.parametrize("fault,reason", [("malformed", "not valid JSON"), ("schema", "required property"),
                                          ("500", "server error"), ("429", "rate limited")])
def test_permanent_faults_end_in_a_reason_not_a_crash(server, tmp_path, fault, reason, monkeypatch):
    monkeypatch.setattr("streamaudio.text.llm.time.sleep", lambda s: None)
    c = client(server, tmp_path, max_retries=2, max_repairs=1)
    with pytest.raises(LLMError, match=reason):
        ask(c, f"[[fault:{fault}]] hello")
    assert c.usage.as_dict()["spoken_form"]["failures"] == 1
    before = server.requests
    c2 = client(server, tmp_path, max_retries=2, max_repairs=1)
    if fault in ("malformed", "schema"):
        # the model's invalid answer is a verdict a rebuild reuses, without asking again
        with pytest.raises(LLMError, match="cached"):
            ask(c2, f"[[fault:{fault}]] hello")
        assert server.requests == before
    else:
        # rate limits and server errors are never cached: the next build asks again
        with pytest.raises(LLMError):
            ask(c2, f"[[fault:{fault}]] hello")
        assert server.requests > before


def test_map_keeps_order_and_bounds_concurrency(server, tmp_path):
    c = client(server, tmp_path, concurrency=4)
    texts = [f"question number {i}" for i in range(20)] + ["[[fault:schema]] bad"]
    res = c.map_json("spoken_form", [([{"role": "user", "content": f"TEXT: {t}"}], SCHEMA) for t in texts])
    assert [r["spoken"] for r in res[:20]] == texts[:20]
    assert isinstance(res[20], LLMError)


def test_table_providers_write_with_the_llm_and_fall_back_offline_with_the_reason(server, tmp_path):
    from streamaudio.plan import InstructionBank, PolicyTable
    from streamaudio.text.tables import N_INSTRUCTIONS, TableEnv

    def env(llm):
        return TableEnv(llm=llm, subtask="proactive_household", ability="proactive_response", description="d",
                        folder=None)

    policy, bank = PolicyTable("policy/proactive_household.yaml"), InstructionBank("instructions/proactive_household.yaml")
    offline = policy.resolve(env(None))
    assert offline.note == "offline table" and offline.value == policy.load(env(None))
    c = client(server, tmp_path)
    written = policy.resolve(env(c))
    assert written.writer == written.note == "llm:dev-model"
    # one request per respond label (concurrent: in any order), asking about that sound
    sent = {call["request"]["messages"][-1]["content"].split("Sound heard: ", 1)[1].split(". Examples")[0]:
            json.loads(call["content"])["replies"] for call in server.log}
    respond = [lab for lab, e in offline.value["labels"].items() if e["action"] == "respond"]
    assert sorted(sent) == sorted(respond)
    for label, entry in written.value["labels"].items():
        if entry["action"] == "respond":
            assert entry["replies"] == sent[label] and len(entry["replies"]) == 3  # the model's replies, in the table
        else:
            assert entry == offline.value["labels"][label]  # ignore labels are left alone
    prompts = bank.resolve(env(c))
    assert prompts.value["system_prompts"] == json.loads(server.log[-1]["content"])["prompts"]
    assert len(prompts.value["system_prompts"]) == N_INSTRUCTIONS
    server.faults.extend(["schema"] * 10)
    bad = client(server, tmp_path / "other", max_repairs=0)
    failed = policy.resolve(env(bad))
    assert failed.note.startswith("offline table (LLM failed") and failed.value == offline.value
