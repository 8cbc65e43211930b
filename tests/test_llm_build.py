"""The demo catalog's chat sub-task built against a local OpenAI-compatible server
(real HTTP, the real openai client): LLM spoken-form writer, OpenAI speech TTS,
faults survived, and a rebuild that makes zero requests."""
import hashlib
import json
import shutil

import pyarrow.parquet as pq
import ray
import yaml

from conftest import demo_catalog
from streamaudio.audit.validate import validate
from streamaudio.build.builder import Builder
from streamaudio.build.catalog import load_catalog
from streamaudio.text.devserver import DevServer


# the sub-tasks whose text an LLM writes through each kind of provider: the spoken form and TTS of
# chat turns, a curated table, an instruction bank with rule replies, sound-grounded answers and tool
# calls (the CLI test below builds the whole demo catalog against the server)
FAULT_SUBTASKS = ["chat_single_turn", "proactive_household", "instr_text_prompt", "audio_qa", "agent_tool_call"]


def _catalog(tmp_path, fixture_root):
    cat = yaml.safe_load(demo_catalog(tmp_path, fixture_root).read_text())
    cat["subtasks"] = {k: v for k, v in cat["subtasks"].items() if k in FAULT_SUBTASKS}
    assert set(cat["subtasks"]) == set(FAULT_SUBTASKS)
    # one conversation the server always answers with broken JSON: it must end as a reject
    uc = tmp_path / "ultrachat"
    shutil.copytree(fixture_root / "ultrachat", uc)
    with open(uc / "train_sft.jsonl", "a") as f:
        f.write(json.dumps({"prompt_id": "poison", "messages": [
            {"role": "user", "content": "[[fault:malformed]] Why is the sea salty?"},
            {"role": "assistant", "content": "Rivers carry dissolved minerals into it."}]}) + "\n")
    cat["sources"]["ultrachat"]["root"] = str(uc)
    path = tmp_path / "llm.yaml"
    path.write_text(yaml.safe_dump(cat))
    return path


def cat_subtasks(cat) -> list[str]:
    return list(yaml.safe_load(cat.read_text())["subtasks"])


# a "slow" fault outlasts the client's timeout; the timeout is long enough that a loaded 2-core CI
# machine never times out an ordinary answer (at 1 s one did, and the build counted a second failure)
SLOW_TIMEOUT_S = 4.0
SLOW_FAULT_S = 8.0


def provenance_by_recipe(out) -> dict[str, list[dict]]:
    prov = {}
    for f in (out / "data").rglob("*.parquet"):
        for p in pq.read_table(f).column("provenance").to_pylist():
            prov.setdefault(p["recipe"], []).append(p)
    return prov


def assert_llm_provenance(prov: dict[str, list[dict]]) -> None:
    chat = prov["chat_single_turn"]
    assert all(p["text_writer"].startswith("source-reply+llm:dev-model") for p in chat)
    assert all(p["tts"].startswith("openai-tts:dev-tts/") for p in chat)
    assert all(p["aligner"].startswith("pocketsphinx") for p in chat)  # speech without timings was aligned
    # every episode whose text an LLM wrote says so (an instr_text_prompt episode may carry only
    # its rule table's replies and the source's)
    for st, ps in prov.items():
        assert all("llm:dev-model" in p["text_writer"] for p in ps) or st == "instr_text_prompt", st


def _build(cat, out, srv, cache):
    ray.shutdown()
    try:
        return Builder(load_catalog(cat), out, num_cpus=2, show_progress=False, cache_dir=cache,
                       llm={"base_url": srv.base_url, "model": "dev-model", "timeout_s": SLOW_TIMEOUT_S, "backoff_s": 0.05,
                            "max_repairs": 1, "max_retries": 3},
                       tts={"backend": "openai", "base_url": srv.base_url, "model": "dev-tts", "voice": "en-us,en",
                            "timeout_s": SLOW_TIMEOUT_S}).run()
    finally:
        ray.shutdown()


def test_llm_and_openai_tts_build_survives_faults_and_rebuilds_from_cache(tmp_path, fixture_root):
    cat = _catalog(tmp_path, fixture_root)
    with DevServer(slow_s=SLOW_FAULT_S, retry_after_s=0.1) as srv:
        srv.faults.extend(["429", "500", "malformed", "schema", "slow"])
        b = _build(cat, tmp_path / "a", srv, tmp_path / "cache")
        first_requests = srv.requests
        assert validate(tmp_path / "a").ok
        stages = b["llm"]["stages"]["spoken_form"]
        assert stages["retries"] >= 3 and stages["repairs"] >= 2 and stages["failures"] == 1
        rejects = pq.read_table(tmp_path / "a" / "rejects.parquet").to_pylist()
        poison = [r for r in rejects if r["item"] == "ultrachat:poison:0"]
        assert len(poison) == 1 and poison[0]["stage"] == "write" and "not valid JSON" in poison[0]["reason"]
        src = b["inputs"]["ultrachat"]
        assert src["seen"] == src["used"] + src["rejected"]
        prov = provenance_by_recipe(tmp_path / "a")
        assert set(prov) == set(cat_subtasks(cat))  # every sub-task of the catalog built
        assert_llm_provenance(prov)
        assert set(b["tables"]["proactive_household"].values()) == {"llm:dev-model"}

        b2 = _build(cat, tmp_path / "b", srv, tmp_path / "cache")
        # a rebuild makes no request at all: answers and the poison's verdict come from the cache
        assert srv.requests == first_requests
        for name, st in b2["llm"]["stages"].items():
            assert st["requests"] == 0 and st["cache_hits"] == st["calls"] > 0, name
        assert b2["rejects"] == b["rejects"]

    def hashes(out):
        return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / "data").rglob("*.parquet"))}

    assert hashes(tmp_path / "a") == hashes(tmp_path / "b")


def test_cli_flags_build_the_demo_catalog_with_llm_and_openai_tts(tmp_path, fixture_root):
    """`streamaudio build --llm-base-url ... --tts openai ...` on the demo catalog, as a user runs it."""
    import subprocess
    import sys

    cat = demo_catalog(tmp_path, fixture_root)
    out = tmp_path / "demo"
    with DevServer() as srv:
        cli = subprocess.run([sys.executable, "-m", "streamaudio", "build", "--catalog", str(cat), "--out", str(out),
                              "--no-progress", "--num-cpus", "2", "--llm-base-url", srv.base_url, "--llm-model", "dev-model",
                              "--tts", "openai", "--tts-base-url", srv.base_url, "--tts-model", "dev-tts",
                              "--tts-voice", "en-us"], capture_output=True, text=True, env={**__import__("os").environ,
                                                                                        "OPENAI_API_KEY": "test"})
        assert cli.returncode == 0, cli.stderr[-2000:]
        assert srv.requests > 0
    v = subprocess.run([sys.executable, "-m", "streamaudio", "validate", str(out)], capture_output=True, text=True)
    assert v.returncode == 0, v.stderr
    b = json.loads((out / "build.json").read_text())
    assert b["llm"]["model"] == "dev-model" and b["tts_backend"]["backend"] == "openai"
    assert "openai-tts:dev-tts" in b["tts"] and any("llm:dev-model" in w for w in b["text_writer"])
    prov = provenance_by_recipe(out)
    assert set(prov) == set(cat_subtasks(cat))  # every sub-task of the demo built
    assert_llm_provenance(prov)
