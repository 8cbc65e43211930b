"""agent_tool_call and agent_noisy_command: the tool registry (every schema a valid draft 2020-12
schema, every command's call valid against its tool, spoken commands and calls in step, a broken
entry refused), and the episodes, planned from the fixture pools and rendered, and built by the
demo when it has the sub-tasks: every spoken command gets exactly one respond turn after its
last word whose tool_call parses, validates against the tool's schema (read here from
manifests/tools/, not through the recipe) and is the call commands.yaml gives for what was said;
the noisy commands' stated SNR is in [-5, 5] dB and matches the mix measured here from separately
rendered stems within 1 dB, and their room response is recorded."""
import io
import json
import shutil
from pathlib import Path

import jsonschema
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import yaml

from streamaudio.build.shards import episode_row
from streamaudio.plan import EpisodePlan, PlanContext, PlanError, Pool, episode_seed, load_recipes
from streamaudio.plan.store import plan_from_dict, plan_to_dict
from streamaudio.render.label import TOL, episode_violations
from streamaudio.render.mix import PEAK_LIMIT, render

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / "manifests" / "tools"
SPOKEN = REPO / "manifests" / "spoken_prompts" / "agent_commands.yaml"
SUBTASKS = ("agent_tool_call", "agent_noisy_command")
MAPPINGS = {"agent_tool_call": {"commands": "commands", "events": "sound", "noise": "noise"},
            "agent_noisy_command": {"commands": "commands", "noise": "noise", "rir": "rir"}}
SLOT = "tool_call="
SNR_RANGE = (-5.0, 5.0)
N = 12


# ---------------------------------------------------------------- the data, read directly
def schemas() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(TOOLS.glob("*.json"))}


def commands() -> dict[str, dict]:
    return yaml.safe_load((TOOLS / "commands.yaml").read_text())["commands"]


def confirmations() -> dict[str, list[str]]:
    return yaml.safe_load((TOOLS / "confirmations.yaml").read_text())["templates"]


def never_labels() -> set[str]:
    return set(yaml.safe_load((TOOLS / "episodes.yaml").read_text())["agent_tool_call"]["event"]["never"])


def spoken_commands() -> dict[str, tuple[str, list[str]]]:
    """key -> (intent, templates) of the spoken command file."""
    doc = yaml.safe_load(SPOKEN.read_text())
    out = {}
    for intent, spec in doc["intents"].items():
        for key in spec["values"]:
            out[key] = (intent, spec["templates"][key])
    return out


# ---------------------------------------------------------------- pools and plans
@pytest.fixture(scope="module")
def command_pool(tmp_path_factory) -> list[dict]:
    """The spoken commands of agent_commands.yaml in two voice slots, spoken by espeak-ng as the
    demo's TTS stage does (word timings from the engine)."""
    from streamaudio.sources import get_adapter, write_manifest
    from streamaudio.speech.espeak import load_voices
    from streamaudio.speech.spoken import pick_voice, speak_row

    work = tmp_path_factory.mktemp("agent_commands")
    (work / "prompts").mkdir()
    shutil.copyfile(SPOKEN, work / "prompts" / SPOKEN.name)
    res = write_manifest(get_adapter("prompts"), work / "prompts", work / "commands.parquet", {"voices": 2})
    voices = load_voices()
    rows = pq.read_table(res.path).to_pylist()
    return [speak_row(r, pick_voice(voices, r["split_group"]), work / "tts") for r in rows]


@pytest.fixture(scope="module")
def pools(clip_pools, command_pool):
    return {**clip_pools, "commands": command_pool}


@pytest.fixture(scope="module")
def recipes():
    found = load_recipes()
    return {st: found[st] for st in SUBTASKS}


def plan_for(recipe, pools, eid, tables=None, seed=7):
    ctx = PlanContext(episode_id=eid, subtask=recipe.subtask, split="train",
                      rng=np.random.default_rng(episode_seed(seed, eid)),
                      pools={p: Pool(p, pools[s]) for p, s in MAPPINGS[recipe.subtask].items()},
                      tables=tables or recipe.offline_tables())
    return recipe.plan(ctx)


def stored(plan) -> dict:
    return json.loads(json.dumps(plan_to_dict(plan)))


def to_row(recipe, plan, eid="e"):
    return episode_row(stored(plan), episode_id=eid, subtask=recipe.subtask, ability=recipe.ability, split="train",
                       recipe_version=recipe.version, seed=0, chunk_s=0.4)


# ---------------------------------------------------------------- what an episode must be
def command_key(seg: dict) -> str | None:
    return next((lab[len(SLOT):] for lab in seg["labels"] or [] if lab.startswith(SLOT)), None)


def command_groups(segs: list[dict]) -> list[tuple[str, list[int]]]:
    """(key, segment indices) of each spoken command, in order: a command that pauses
    mid-sentence is two segments of one clip (attrs part 1 and 2)."""
    groups: list[tuple[str, list[int]]] = []
    for i, s in enumerate(segs):
        key = command_key(s)
        if s["role"] != "user" or key is None:
            continue
        part = json.loads(s["attrs"]).get("part")
        if part == 2:
            assert groups and groups[-1][0] == key and segs[groups[-1][1][-1]]["clip_id"] == s["clip_id"]
            groups[-1][1].append(i)
        else:
            groups.append((key, [i]))
    return groups


def listed_tools(system_prompt: str) -> dict[str, dict]:
    """The tool definitions at the end of a system prompt (one JSON object per line)."""
    out = {}
    for line in system_prompt.splitlines():
        if line.startswith("{"):
            d = json.loads(line)
            out[d["name"]] = d
    return out


def check_episode(row: dict, noisy: bool, offline_texts: bool = True) -> list[dict]:
    """Every rule of the sub-task on one episode; returns the calls it makes."""
    assert episode_violations(row) == []
    segs, turns = row["segments"], row["turns"]
    tools, table, confirm = schemas(), commands(), confirmations()
    groups = command_groups(segs)
    respond = [t for t in turns if t["kind"] == "respond"]
    assert 1 <= len(groups) <= 4 and len(respond) == len(groups)
    assert len({k for k, _ in groups}) == len(groups), "a command is said once per episode"
    calls = []
    for key, idx in groups:
        last = segs[idx[-1]]
        (turn,) = [t for t in respond if set(t["evidence"]) & set(idx)]  # exactly one reply per command
        assert sorted(turn["evidence"]) == idx
        # after the command's last word (the evidence rule's bound holds too)
        assert last["words"][-1]["end_s"] - TOL <= turn["trigger_s"] <= last["words"][-1]["end_s"] + 2.0 + TOL
        call = json.loads(turn["tool_call"])
        assert list(call) == ["name", "arguments"]
        jsonschema.Draft202012Validator(tools[call["name"]]).validate(call["arguments"])
        assert call == {"name": table[key]["tool"], "arguments": table[key]["arguments"]}, key
        assert turn["text"].strip() and "{" not in turn["text"] and turn["tool_call"] not in turn["text"]
        if offline_texts:
            say = table[key]["say"]
            assert turn["text"] in {" ".join(t.format(**say).split()) for t in confirm[table[key]["confirm"]]}
        if len(idx) == 2:  # paused mid-command: silent in the pause, no call on the fragment
            head, tail = segs[idx[0]], segs[idx[1]]
            (quiet,) = [t for t in turns if t["evidence"] == [idx[0]]]
            assert quiet["kind"] == "stay_silent"
            assert head["words"][-1]["end_s"] - TOL <= quiet["trigger_s"] < tail["start_s"]
            assert not [t for t in respond if head["start_s"] <= t["trigger_s"] < tail["words"][-1]["end_s"]]
        calls.append(call)
    others = [i for i, s in enumerate(segs) if s["role"] == "environment"]
    for i in others:  # an unrelated sound: silence, and never one that asks for a reply of its own
        (t,) = [t for t in turns if i in t["evidence"]]
        assert t["kind"] == "stay_silent" and not never_labels() & set(segs[i]["labels"])
    listed = listed_tools(row["system_prompt"])
    assert {c["name"] for c in calls} <= set(listed)
    for name, d in listed.items():
        assert d["parameters"]["properties"] == tools[name]["properties"]
    if noisy:
        assert not others and segs[0]["role"] == "background" and segs[0]["kind"] == "noise"
        rooms = set()
        for _, idx in groups:
            for i in idx:
                attrs = json.loads(segs[i]["attrs"])
                assert SNR_RANGE[0] <= attrs["target_snr_db"] <= SNR_RANGE[1]
                # the renderer's own measurement on the mix, as stated in the segment
                assert segs[i]["snr_db"] == pytest.approx(attrs["target_snr_db"], abs=1.0)
                assert attrs["rir"] and isinstance(attrs["room"], dict)  # the response's id, its room's facts
                rooms.add(attrs["rir"])
        assert len(rooms) == 1, "one room per episode"
    return calls


# ---------------------------------------------------------------- the SNR, measured here
HOP = 160  # 10 ms


def _frame_power(x: np.ndarray) -> np.ndarray:
    n = len(x) // HOP
    return (x[: n * HOP].astype(np.float64).reshape(n, HOP) ** 2).mean(axis=1) + 1e-20


def measured_snrs(row: dict, stored_plan: dict) -> list[tuple[float, float, float]]:
    """(target, stated, measured) per command segment. The command is rendered alone (its clip,
    room and the gain the build recorded), the noise is the episode's audio minus that stem; the
    SNR is speech power over noise power on the command's active 10 ms frames (those within 20 dB
    of its loudest 5%: pauses between words do not count) between its first word's start and
    its last word's end."""
    mix, sr = sf.read(io.BytesIO(row["audio"]["bytes"]), dtype="float64")
    assert sr == 16000
    plan = plan_from_dict(stored_plan)
    out = []
    for seg, rs in zip(plan.segments, row["segments"]):
        if rs["role"] != "user":
            continue
        seg.gain_db, seg.snr_db = float(rs["gain_db"]), None
        stem = render(EpisodePlan(segments=[seg], turns=[], min_duration_s=row["duration_s"]))
        speech, _ = sf.read(io.BytesIO(stem.flac), dtype="float64")
        assert len(speech) == len(mix) and np.max(np.abs(speech)) < PEAK_LIMIT  # the stem as it is in the mix
        noise = mix - speech
        a, b = int(rs["words"][0]["start_s"] * 100), int(np.ceil(rs["words"][-1]["end_s"] * 100))
        ps, pn = _frame_power(speech)[a:b], _frame_power(noise)[a:b]
        active = ps >= np.percentile(ps, 95) * 0.01
        measured = 10 * np.log10(ps[active].mean() / pn[active].mean())
        out.append((json.loads(rs["attrs"])["target_snr_db"], rs["snr_db"], float(measured)))
    return out


# ---------------------------------------------------------------- registry tests
def test_tool_schemas_are_strict_draft_2020_12_object_schemas():
    index = yaml.safe_load((TOOLS / "tools.yaml").read_text())["tools"]
    found = schemas()
    assert 8 <= len(found) <= 12 and sorted(t["name"] for t in index) == sorted(found)
    for entry in index:
        s = found[entry["name"]]
        jsonschema.Draft202012Validator.check_schema(s)
        assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert s["title"] == entry["name"] and s["description"] == entry["description"]
        assert s["type"] == "object" and s["additionalProperties"] is False
        assert entry["phrasings"]


def test_every_command_calls_a_valid_tool_call_and_is_spoken():
    tools, table, spoken, confirm = schemas(), commands(), spoken_commands(), confirmations()
    assert 25 <= len(table) <= 40
    assert set(table) == set(spoken), "commands.yaml and agent_commands.yaml name the same commands"
    assert {c["tool"] for c in table.values()} == set(tools), "every tool is asked for"
    for key, cmd in table.items():
        jsonschema.Draft202012Validator(tools[cmd["tool"]]).validate(cmd["arguments"])
        intent, templates = spoken[key]
        assert intent.startswith("agent_cmd_") and len(templates) == 1
        assert not any(ch.isdigit() for ch in templates[0]), "numbers in words: said as written"
        for t in confirm[cmd["confirm"]]:
            assert "{" not in t.format(**cmd["say"])
    doc = yaml.safe_load(SPOKEN.read_text())
    assert all(len(spec["values"]) <= 12 for spec in doc["intents"].values())


def _tools_module(recipes):
    import importlib

    return importlib.import_module(f"{recipes['agent_tool_call'].package}._tools")


def test_a_broken_registry_is_an_error_naming_each_entry(recipes, tmp_path):
    mod = _tools_module(recipes)
    folder = tmp_path / "tools"
    shutil.copytree(TOOLS, folder)
    text = (folder / "commands.yaml").read_text()
    text = text.replace('arguments: {room: all, state: "off"}', "arguments: {room: all, state: off}")  # YAML: False
    text = text.replace("arguments: {level: 40}", "arguments: {level: 140}")
    text = text.replace("tool: lock_door\n    arguments: {door: front_door",
                        "tool: lock_doors\n    arguments: {door: front_door")  # no such tool
    text = text.replace("say: {name: Mum}", "say: {who: Mum}")
    (folder / "commands.yaml").write_text(text)
    schema = json.loads((folder / "set_timer.json").read_text())
    schema["properties"]["duration_s"]["type"] = "whole number"
    (folder / "set_timer.json").write_text(json.dumps(schema))
    with pytest.raises(mod.RegistryError) as err:
        mod.load_registry(folder / "tools.yaml", folder / "commands.yaml", confirmations())
    msg = str(err.value)
    for what in ("lights:all:off", "volume:40", "door:front_door:lock", "call:mum", "set_timer.json", "timer:300"):
        assert what in msg, (what, msg)
    # the shipped registry is clean
    reg = mod.load_registry(TOOLS / "tools.yaml", TOOLS / "commands.yaml", confirmations())
    assert set(reg["commands"]) == set(commands())


def test_a_call_that_stops_validating_is_a_plan_error(recipes, pools):
    recipe = recipes["agent_tool_call"]
    tables = recipe.offline_tables()
    for cmd in tables["tools"]["commands"].values():
        cmd["arguments"] = {**cmd["arguments"], "unexpected": 1}  # additionalProperties: false
    with pytest.raises(PlanError, match="does not validate"):
        plan_for(recipe, pools, "broken-0", tables=tables)


def test_instruction_banks_describe_a_tool_using_assistant(recipes):
    names = set(schemas())
    for recipe in recipes.values():
        prompts = recipe.offline_tables()["instructions"]["system_prompts"]
        assert len(set(prompts)) >= 20
        assert all("tool" in p.lower() for p in prompts)
        assert not [p for p in prompts if any(n in p for n in names)], "the tools are listed by the recipe"


# ---------------------------------------------------------------- planned episodes
def test_agent_tool_call_episodes(recipes, pools):
    recipe = recipes["agent_tool_call"]
    called, silences, pauses = set(), 0, 0
    for i in range(N):
        plan = plan_for(recipe, pools, f"tool-{i}")
        assert all(s.rir is None and s.snr_db is None for s in plan.segments)  # a quiet room, as recorded
        row = to_row(recipe, plan)
        calls = check_episode(row, noisy=False)
        called |= {c["name"] for c in calls}
        silences += sum(t["kind"] == "stay_silent" for t in row["turns"])
        pauses += sum(json.loads(s["attrs"]).get("part") == 1 for s in row["segments"])
    assert len(called) >= 6 and silences and pauses  # variety, unrelated sounds and paused commands occur


def test_agent_noisy_command_episodes_state_their_snr_and_room(recipes, pools):
    recipe = recipes["agent_noisy_command"]
    targets, rooms = [], set()
    for i in range(N):
        plan = plan_for(recipe, pools, f"noisy-{i}")
        row = to_row(recipe, plan)
        check_episode(row, noisy=True)
        for seg, s in zip(plan.segments[1:], row["segments"][1:]):
            attrs = json.loads(s["attrs"])
            targets.append(attrs["target_snr_db"])
            rooms.add(attrs["rir"])
            assert attrs["rir"] == seg.rir["id"] and attrs["room"]["t60_s"] > 0  # the room it was rendered in
    assert max(targets) - min(targets) > 5 and min(targets) < 0 < max(targets)
    assert len(rooms) >= 2


def test_noisy_command_snr_matches_the_mix_measured_from_stems(recipes, pools):
    recipe = recipes["agent_noisy_command"]
    found = []
    for i in range(8):
        plan = plan_for(recipe, pools, f"snr-{i}")
        found += measured_snrs(to_row(recipe, plan), stored(plan))
    assert len(found) >= 10
    for target, stated, measured in found:
        assert SNR_RANGE[0] <= target <= SNR_RANGE[1]
        assert abs(measured - target) <= 1.0, (target, stated, measured)
        assert abs(measured - stated) <= 1.0, (target, stated, measured)


def test_confirmations_and_registry_with_the_dev_llm(recipes, pools, tmp_path):
    """With the dev server as LLM (schema-shaped filler), the confirmations keep every reviewed
    template, filler without the placeholders is refused, and episodes still plan with valid
    calls and filled-in confirmations."""
    from streamaudio.text.devserver import DevServer
    from streamaudio.text.llm import LLMClient, LLMConfig
    from streamaudio.text.tables import TableEnv

    recipe = recipes["agent_tool_call"]
    with DevServer() as server:
        llm = LLMClient(LLMConfig(base_url=server.base_url, model="dev-model", timeout_s=5.0, backoff_s=0.01),
                        cache_dir=tmp_path / "cache")
        env = TableEnv(llm=llm, subtask=recipe.subtask, ability=recipe.ability, description=recipe.description,
                       folder=recipe.folder)
        resolved = {}
        for name, provider in recipe.providers().items():
            resolved[name] = provider.resolve(env)
            env.tables[name] = resolved[name].value
    confirm = resolved["confirmations"]
    assert confirm.report["templates_rejected"] > 0 and confirm.report["templates_added"] == 0
    assert env.tables["confirmations"]["templates"] == confirmations()
    assert set(env.tables["tools"]["commands"]) == set(commands())
    for i in range(3):
        check_episode(to_row(recipe, plan_for(recipe, pools, f"llm-{i}", tables=env.tables)), noisy=False)


# ---------------------------------------------------------------- built episodes
def built_rows(built, subtask: str) -> list[dict]:
    """Every stored row of a sub-task in the demo build (skips when the demo has none)."""
    files = sorted((built["one"] / "data" / subtask).glob("*.parquet"))
    if not files:
        pytest.skip(f"{subtask} is not in the demo build")
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def built_plans(built, subtask: str) -> dict[str, dict]:
    work = built["one"].with_name(built["one"].name + ".work") / "plans" / subtask
    return {p["id"]: json.loads(p["plan"])
            for f in sorted(work.glob("*.parquet")) for p in pq.read_table(f).to_pylist()}


@pytest.mark.parametrize("subtask", SUBTASKS)
def test_built_episodes_call_valid_tools_after_each_command(built, subtask):
    rows = built_rows(built, subtask)
    for row in rows:
        check_episode(row, noisy=subtask == "agent_noisy_command", offline_texts=False)


def test_built_noisy_commands_snr_matches_the_mix(built):
    rows = built_rows(built, "agent_noisy_command")
    plans = built_plans(built, "agent_noisy_command")
    for row in rows:
        for target, stated, measured in measured_snrs(row, plans[row["id"]]):
            assert abs(measured - target) <= 1.0, (row["id"], target, stated, measured)
            assert abs(measured - stated) <= 1.0, (row["id"], target, stated, measured)
