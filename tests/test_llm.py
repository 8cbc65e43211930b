import json
import time

import pytest

from streamaudio.devserver import DevServer
from streamaudio.llm import LLMClient, LLMConfig, LLMError

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
    assert ask(c) == {"spoken": "What is 15% of 240?"}
    s = c.usage.as_dict()["spoken_form"]
    assert s["requests"] == 1 and s["calls"] == 1 and s["prompt_tokens"] > 0 and s["completion_tokens"] > 0


def test_a_rerun_makes_zero_requests(server, tmp_path):
    ask(client(server, tmp_path))
    before = server.requests
    c2 = client(server, tmp_path)
    assert ask(c2) == {"spoken": "What is 15% of 240?"}
    assert server.requests == before
    assert c2.usage.as_dict()["spoken_form"]["cache_hits"] == 1
    # a different prompt, model or schema is a different key
    ask(c2, "Another question?")
    assert server.requests == before + 1


def test_429_honours_retry_after(server, tmp_path, monkeypatch):
    waits = []
    monkeypatch.setattr("streamaudio.llm.time.sleep", lambda s: waits.append(s))
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
    assert ask(c) == {"spoken": "What is 15% of 240?"}
    s = c.usage.as_dict()["spoken_form"]
    assert s["repairs"] == 1 and s["requests"] == 2


@pytest.mark.parametrize("fault,reason", [("malformed", "not valid JSON"), ("schema", "required property"),
                                          ("500", "server error"), ("429", "rate limited")])
def test_permanent_faults_end_in_a_reason_not_a_crash(server, tmp_path, fault, reason, monkeypatch):
    monkeypatch.setattr("streamaudio.llm.time.sleep", lambda s: None)
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


def test_writers_fill_tables_and_fall_back_offline_with_the_reason(server, tmp_path):
    from streamaudio.plan import load_recipes
    from streamaudio.writers import N_INSTRUCTIONS, written_tables

    recipe = load_recipes()["proactive_household"]
    c = client(server, tmp_path)
    overrides, report = written_tables(c, recipe)
    assert report == {"policy": "llm:dev-model", "instructions": "llm:dev-model"}
    assert len(overrides["instructions"]["system_prompts"]) == N_INSTRUCTIONS
    for label, entry in overrides["policy"]["labels"].items():
        if entry["action"] == "respond":
            assert len(entry["replies"]) == 3 and all(r.startswith("replies") for r in entry["replies"])
        else:
            assert "replies" not in entry
    assert written_tables(None, recipe) == ({}, {"policy": "offline table", "instructions": "offline table"})
    server.faults.extend(["schema"] * 10)
    bad = client(server, tmp_path / "other", max_repairs=0)
    overrides, report = written_tables(bad, recipe)
    assert report["policy"].startswith("offline table (LLM failed") and "policy" not in overrides
