"""The proactive sound policy over the AudioSet ontology: the shipped ontology and label index,
a policy table that covers every class with a consistent hierarchy, inheritance and context
decisions, the LLM path's per-item checks (a fake model and the dev server), and
`streamaudio policy decide`. The ontology checks walk the JSON themselves; the hierarchy checks
recompute inheritance here rather than trusting the module's resolver."""
import copy
import csv
import json
import subprocess
import sys
from collections import deque

import pytest
import yaml

from streamaudio.resources import MANIFESTS_DIR
from streamaudio.text import sound_policy as sp
from streamaudio.text.devserver import DevServer
from streamaudio.text.llm import LLMClient, LLMConfig, LLMError
from streamaudio.text.tables import TableEnv

ONTOLOGY = json.loads((MANIFESTS_DIR / "audioset" / "ontology.json").read_text())
LABELS = list(csv.reader((MANIFESTS_DIR / "audioset" / "class_labels_indices.csv").read_text().splitlines()))
TABLE = yaml.safe_load((MANIFESTS_DIR / "policy" / "sound_policy.yaml").read_text())
BY_ID = {r["id"]: r for r in ONTOLOGY}
NAMES = {r["name"] for r in ONTOLOGY}
PARENTS: dict[str, list[str]] = {}
for _r in ONTOLOGY:
    for _c in _r["child_ids"]:
        PARENTS.setdefault(BY_ID[_c]["name"], []).append(_r["name"])
EMOTIONS = set(yaml.safe_load((MANIFESTS_DIR / "taxonomy.yaml").read_text())["emotions"])


@pytest.fixture(scope="module")
def policy():
    return sp.load_policy()


def labelled() -> list[str]:
    return [row[2] for row in LABELS[1:]]


# ---------------------------------------------------------------- the ontology and the label index
def test_the_ontology_is_the_audioset_dag():
    assert len(ONTOLOGY) == 632
    assert len(BY_ID) == 632 and len(NAMES) == 632  # ids and display names are unique
    for r in ONTOLOGY:
        assert set(r) == {"id", "name", "description", "child_ids", "restrictions"}
        assert r["description"].strip() and r["name"].strip()
        assert all(c in BY_ID for c in r["child_ids"]), r["name"]
        assert set(r["restrictions"]) <= {"abstract", "blacklist"}
    roots = [r["name"] for r in ONTOLOGY if r["name"] not in PARENTS]
    assert roots == ["Human sounds", "Animal", "Music", "Natural sounds", "Sounds of things",
                     "Source-ambiguous sounds", "Channel, environment and background"]
    # no cycles: a depth-first walk never meets a class on its own path
    state = {}

    def visit(i):
        state[i] = "open"
        for c in BY_ID[i]["child_ids"]:
            assert state.get(c) != "open", f"cycle through {BY_ID[c]['name']}"
            if c not in state:
                visit(c)
        state[i] = "done"

    for r in ONTOLOGY:
        if r["id"] not in state:
            visit(r["id"])
    assert len(state) == 632
    # the DAG: some classes have several parents (Crackle: Fire and Onomatopoeia)
    assert sorted(PARENTS["Crackle"]) == ["Fire", "Onomatopoeia"]


def test_the_527_labelled_classes_are_in_the_ontology_with_their_display_names():
    assert LABELS[0] == ["index", "mid", "display_name"]
    rows = LABELS[1:]
    assert len(rows) == 527 and [int(r[0]) for r in rows] == list(range(527))
    for _, mid, name in rows:
        assert mid in BY_ID, mid
        assert BY_ID[mid]["name"] == name  # real display names (commas, not AND / underscores)
    assert ("/m/01y3hg", "Smoke detector, smoke alarm") in {(m, n) for _, m, n in rows}


def test_the_licence_names_the_source_and_what_changed():
    text = (MANIFESTS_DIR / "audioset" / "LICENSE.md").read_text()
    for must in ("CC BY-SA 4.0", "https://github.com/audioset/ontology", "Google", "positive_examples", "citation_uri"):
        assert must in text


# ---------------------------------------------------------------- the table covers the ontology
def nearest_entries(name: str, explicit) -> tuple[int, list[str]]:
    """(distance, the explicit ancestors at the smallest distance): an independent walk."""
    dist = {name: 0}
    todo = deque([name])
    while todo:
        n = todo.popleft()
        for p in PARENTS.get(n, []):
            if p not in dist:
                dist[p] = dist[n] + 1
                todo.append(p)
    cands = [(d, a) for a, d in dist.items() if a != name and a in explicit]
    if not cands:
        return -1, []
    best = min(d for d, _ in cands)
    return best, [a for d, a in cands if d == best]


def test_the_table_loads_without_a_problem_and_names_only_ontology_classes():
    problems, _ = sp.policy_problems(TABLE, ONTOLOGY)
    assert problems == []
    assert set(TABLE["classes"]) <= NAMES
    assert set(TABLE["decisions"]) == {"respond", "ignore", "depends"}
    for style in TABLE["styles"].values():
        assert set(style["emotions"]) <= EMOTIONS


def test_every_class_and_every_labelled_class_resolves_to_a_decision(policy):
    assert set(policy["owner"]) == NAMES
    for name in labelled():
        d = sp.decide([name], None, policy)
        assert d.decision in ("RESPOND", "IGNORE"), name
        assert d.label == name
        assert d.rule.startswith(name) or d.rule.startswith("inherited:")
        if d.respond:
            assert d.reply.strip() and d.emotion in EMOTIONS


def test_inheritance_follows_the_nearest_decided_ancestor(policy):
    explicit = TABLE["classes"]
    for name in NAMES:
        owner = policy["owner"][name]
        if name in explicit:
            assert owner == name
            continue
        _, near = nearest_entries(name, explicit)
        assert owner in near, (name, owner, near)
        if len(near) > 1:  # several parents: equally near entries must all be ignore
            assert all(explicit[n]["decision"] == "ignore" for n in near), (name, near)


def test_an_override_says_why_and_a_disagreement_between_parents_needs_an_entry():
    explicit = TABLE["classes"]
    for name, entry in explicit.items():
        _, near = nearest_entries(name, explicit)
        inherited = {explicit[n]["decision"] for n in near}
        if near and inherited != {entry["decision"]}:
            assert str(entry.get("reason", "")).strip(), f"{name}: an override without a reason"
    # and the loader enforces both
    t = copy.deepcopy(TABLE)
    del t["classes"]["Throat clearing"]["reason"]
    assert any("Throat clearing" in p and "without a reason" in p for p in sp.policy_problems(t, ONTOLOGY)[0])
    t = copy.deepcopy(TABLE)
    del t["classes"]["Vehicle horn, car horn, honking"]  # its parents Car (depends) and Alarm (respond)
    probs = sp.policy_problems(t, ONTOLOGY)[0]
    assert any("Vehicle horn" in p and "disagree" in p for p in probs)
    with pytest.raises(sp.PolicyError, match="disagree"):
        sp.compile_policy(t, ONTOLOGY)
    t = copy.deepcopy(TABLE)
    del t["classes"]["Animal"]
    assert any("no decided ancestor" in p for p in sp.policy_problems(t, ONTOLOGY)[0])


def test_depends_classes_list_both_outcomes_and_plain_classes_keep_their_decision():
    for name, entry in TABLE["classes"].items():
        ctxs = entry.get("contexts") or []
        if entry["decision"] == "depends":
            assert {c["decision"] for c in ctxs} == {"respond", "ignore"}, name
            assert entry["default"]["decision"] in ("respond", "ignore")
        else:
            assert all(c["decision"] == entry["decision"] for c in ctxs), name
        for c in [*ctxs, entry.get("default") or {}, entry]:
            if c.get("decision") == "respond":
                assert c["emotion"] in TABLE["styles"][c["style"]]["emotions"], (name, c.get("context"))
                assert c["replies"] and all(r.strip()[-1] in ".!?" for r in c["replies"]), name
    t = copy.deepcopy(TABLE)
    t["classes"]["Cough"]["contexts"] = [c for c in t["classes"]["Cough"]["contexts"] if c["decision"] == "ignore"]
    assert any("Cough" in p and "one respond and one ignore" in p for p in sp.policy_problems(t, ONTOLOGY)[0])


# ---------------------------------------------------------------- reviewed as a person would
HAZARDS = ["Shatter", "Siren", "Explosion", "Crackle", "Car alarm", "Skidding", "Thunder", "Power tool",
           "Smoke detector, smoke alarm", "Fire alarm", "Gunshot, gunfire", "Screaming", "Civil defense siren"]
HEALTH = ["Cough", "Sneeze", "Baby cry, infant cry", "Gasp", "Groan", "Wheeze", "Pant", "Crying, sobbing"]


def outcomes(label, policy):
    _, entry = sp.entry_for(label, policy)
    return [entry["outcome"], *entry["contexts"]]


def test_hazards_respond_urgently_and_health_distress_caringly(policy):
    for label in HAZARDS:
        urgent = [o for o in outcomes(label, policy) if o["decision"] == "respond"]
        assert urgent and all(o["emotion"] == "urgent" and o["style"] == "urgent" for o in urgent), label
    for label in HEALTH:
        care = [o for o in outcomes(label, policy) if o["decision"] == "respond"]
        assert care and all(o["style"] == "caring" for o in care), label
    # a hazard heard with no context at all is answered (better safe)
    for label in ["Shatter", "Explosion", "Crackle", "Smoke detector, smoke alarm", "Siren", "Thunder", "Screaming"]:
        assert sp.decide([label], None, policy).respond, label


def test_household_and_ignore_tables_agree_with_the_policy(policy):
    household = yaml.safe_load((MANIFESTS_DIR / "policy" / "proactive_household.yaml").read_text())["labels"]
    for label, e in household.items():
        if e["action"] == "respond":  # answered by default, or in a context that says why
            assert any(o["decision"] == "respond" for o in outcomes(label, policy)), label
        else:
            assert not sp.decide([label], None, policy).respond, label
    benign = yaml.safe_load((MANIFESTS_DIR / "policy" / "proactive_ignore.yaml").read_text())
    for label in benign["benign"]:
        assert sp.decide([label], None, policy).decision == "IGNORE", label
    for label in benign["never_benign"]:
        assert any(o["decision"] == "respond" for o in outcomes(label, policy)), label
        assert sp.can_respond(label, policy)
    assert not sp.can_respond("Music", policy) and sp.can_respond("Cough", policy)
    # the older per-label shape, for the recipes that still read it
    view = sp.label_actions(policy, ["Doorbell", "Bark", "Cough"])
    assert view["Doorbell"]["action"] == "respond" and view["Doorbell"]["replies"] == household["Doorbell"]["replies"]
    assert view["Bark"]["action"] == view["Cough"]["action"] == "ignore"
    assert sp.label_actions(policy, ["Cough"], "a coughing fit")["Cough"]["action"] == "respond"


# ---------------------------------------------------------------- inheritance and context decisions
@pytest.mark.parametrize("labels, context, decision, rule", [
    (["Ringtone"], None, "RESPOND", "inherited:Telephone<-Ringtone"),
    (["Smoke detector, smoke alarm", "Alarm"], None, "RESPOND", "Smoke detector, smoke alarm"),
    (["Ding-dong"], None, "RESPOND", "inherited:Doorbell<-Ding-dong"),
    (["Growling"], None, "IGNORE", "inherited:Animal<-Growling"),  # four parents, all of them under Animal
    (["Thunder"], "distant thunder rumbling far away", "IGNORE",
     "inherited:Thunderstorm<-Thunder/context:distant thunder rumbling far away"),
    (["Thunder"], None, "RESPOND", "inherited:Thunderstorm<-Thunder/default"),
    (["Microwave oven"], "door opened or closed", "IGNORE", "Microwave oven/context:door opened or closed"),
    (["Microwave oven"], "finished beeping", "RESPOND", "Microwave oven/context:finished beeping"),
    (["Microwave oven"], "arcing / sparking", "RESPOND", "Microwave oven/context~arcing and sparking inside"),
    (["Microwave oven"], None, "IGNORE", "Microwave oven/default"),
    (["Cough"], "a single light cough", "IGNORE", "Cough/context:a single light cough"),
    (["Cough"], "A coughing fit.", "RESPOND", "Cough/context:a coughing fit"),
    (["Cough"], "he coughed once, just a little", "IGNORE", "Cough/context~a single light cough"),
    (["Cough"], "coughing again and again for a minute", "RESPOND", "Cough/context~a coughing fit"),
    (["Car passing by", "Car"], "a car passing by", "IGNORE", "inherited:Car<-Car passing by/context:a car passing by"),
    (["Car"], "a car approaching fast on a collision course", "RESPOND",
     "Car/context:a car approaching fast on a collision course"),
    (["Car"], "a car speeding towards the user crossing the street", "RESPOND",
     "Car/context~a car approaching fast on a collision course"),
    (["Violin, fiddle"], "a violin played in tune", "IGNORE", "Violin, fiddle/context:a violin played in tune"),
    (["Violin, fiddle"], "the violin sounds detuned", "RESPOND", "Violin, fiddle/context~a detuned violin while the user practises"),
    (["Power tool", "Drill"], "power tool left running in an empty room", "RESPOND",
     "inherited:Power tool<-Drill/context:power tool left running in an empty room"),
    (["Power tool", "Drill"], "someone next door drilling through the wall", "IGNORE",
     "inherited:Power tool<-Drill/context~a neighbour drilling behind the wall"),
    (["Police car (siren)", "Emergency vehicle"], "a siren passing by on a distant road", "IGNORE",
     "Police car (siren)/context:a siren passing by on a distant road"),
    (["/m/01b_21"], "a coughing fit", "RESPOND", "Cough/context:a coughing fit"),  # a mid works too
    (["Rain"], "something nobody described", "IGNORE", "Rain/default"),  # no word in common: the default
])
def test_decide(labels, context, decision, rule, policy):
    d = sp.decide(labels, context, policy)
    assert (d.decision, d.rule) == (decision, rule)
    assert bool(d.reply) == (decision == "RESPOND")


def test_several_labels_the_specific_one_and_a_respond_win(policy):
    # an alarm with music in the room is an alarm, whatever the music's context says
    assert sp.decide(["Music", "Smoke detector, smoke alarm"], "music playing in the living room", policy).respond
    # the parent labels of a clip do not speak over the class they contain
    d = sp.decide(["Shatter", "Glass", "Breaking"], "glass bottles being tipped into a recycling bin", policy)
    assert (d.decision, d.label) == ("IGNORE", "Shatter")
    d = sp.decide(["Crackle", "Fire"], "a log fire crackling in the fireplace", policy)
    assert (d.decision, d.label) == ("IGNORE", "Crackle")
    # a depends-default does not outvote a context that matched
    d = sp.decide(["Skidding", "Tire squeal"], "cars skidding in a race on the television", policy)
    assert d.decision == "IGNORE" and d.rule == "Skidding/context:cars skidding in a race on the television"
    with pytest.raises(sp.PolicyError):
        sp.decide(["Not a sound class"], None, policy)


def test_replies_come_from_the_deciding_context_and_choose_is_honoured(policy):
    _, entry = sp.entry_for("Cough", policy)
    fit = next(c for c in entry["contexts"] if c["context"] == "a coughing fit")
    seen = {sp.decide(["Cough"], "a coughing fit", policy, choose=lambda xs, i=i: xs[i % len(xs)]).reply
            for i in range(6)}
    assert seen == set(fit["replies"])
    assert sp.decide(["Cough"], "a coughing fit", policy).reply == sp.decide(["Cough"], "a coughing fit", policy).reply


# ---------------------------------------------------------------- the LLM path
class FakeLLM:
    """map_json answers from a function of the request; records the requests."""

    def __init__(self, answer):
        self.answer, self.requests = answer, []
        self.config = LLMConfig(base_url="http://fake/v1", model="fake-model")

    def map_json(self, stage, reqs):
        self.requests += reqs
        return [self.answer(messages, schema) for messages, schema in reqs]


def good_and_bad(messages, schema):
    user = messages[1]["content"]
    if "Sound class: Cough" not in user:
        return LLMError("boom", transient=False)
    return {"contexts": [
        {"context": "coughing through the night and unable to sleep", "keywords": ["night", "sleep", "awake"],
         "decision": "respond", "style": "caring", "emotion": "normal",
         "replies": ["You've been coughing all night. Would a warm drink with honey help?"]},
        {"context": "context: Sound class Cough heard as Cough", "keywords": ["keywords: x y", "zz"],  # filler
         "decision": "respond", "style": "caring", "emotion": "normal", "replies": ["replies: Sound class Cough"]},
        {"context": "a dry cough while talking on the phone", "keywords": ["phone", "talking"],
         "decision": "respond", "style": "urgent", "emotion": "normal",  # normal is not an urgent emotion
         "replies": ["Take it easy."]},
        {"context": "clearing the throat before speaking", "keywords": ["speaking", "throat", "meeting"],
         "decision": "ignore", "style": "caring", "emotion": "normal", "replies": []}],
        "replies": [{"context": "a coughing fit", "reply": "That cough sounds painful. Shall I bring you some water?"},
                    {"context": "a coughing fit", "reply": "reply: Sound class Cough heard as Cough What it is"},
                    {"context": "default", "reply": "This has no target."}]}


def test_llm_contexts_and_replies_are_checked_one_by_one(policy):
    llm = FakeLLM(good_and_bad)
    out, writer, _, report = sp.enrich(copy.deepcopy(policy), ["Cough", "Doorbell", "Typing"], llm)
    # Typing's entry is a plain ignore: nothing to write, no request
    assert len(llm.requests) == 2 and writer == "llm:fake-model"
    _, cough = sp.entry_for("Cough", out)
    added = [c for c in cough["contexts"] if c["writer"] == "llm:fake-model"]
    assert [c["context"] for c in added] == ["coughing through the night and unable to sleep",
                                             "clearing the throat before speaking"]
    fit = next(c for c in cough["contexts"] if c["context"] == "a coughing fit")
    assert fit["replies"][-1] == "That cough sounds painful. Shall I bring you some water?"
    assert report["contexts_added"] == 2 and report["replies_added"] == 1
    assert report["rejected"]["context: schema-shaped filler"] == 1
    assert any("not allowed for style" in k for k in report["rejected"])
    assert report["offline_entries"] == {"Doorbell": "boom"}
    # the new context decides, and the reviewed ones still do
    d = sp.decide(["Cough"], "coughing through the night and unable to sleep", out)
    assert d.respond and d.context == "coughing through the night and unable to sleep"
    assert sp.decide(["Cough"], "a single light cough", out).decision == "IGNORE"
    # the original is untouched
    assert all(c["writer"] == "table" for c in sp.entry_for("Cough", policy)[1]["contexts"])


def test_a_plain_respond_entry_only_takes_respond_contexts(policy):
    def answer(messages, schema):
        allowed = schema["properties"]["contexts"]["items"]["properties"]["decision"]["enum"]
        assert allowed == ["respond"]
        return {"contexts": [{"context": "a smoke alarm test announced by the building manager",
                              "keywords": ["test", "announced", "manager"], "decision": "ignore", "style": "caring",
                              "emotion": "normal", "replies": []}], "replies": []}

    _, writer, _, report = sp.enrich(copy.deepcopy(policy), ["Smoke detector, smoke alarm"], FakeLLM(answer))
    assert writer == "table" and report["contexts_added"] == 0
    assert any("not allowed for a respond class" in k for k in report["rejected"])


def test_the_dev_server_filler_is_rejected_and_the_table_stays(policy):
    with DevServer() as srv:
        llm = LLMClient(LLMConfig(base_url=srv.base_url, model="dev-model", timeout_s=5.0, backoff_s=0.05))
        env = TableEnv(llm=llm, subtask="proactive_health", ability="proactive_response", description="", folder=None)
        env.tables["scenes"] = {"scenes": {"Cough": [], "Sneeze": []}, "benign": {"Typing": []}}
        res = sp.SoundPolicyTable(classes_from="scenes").resolve(env)
        assert srv.requests >= 2
    assert res.writer == "table" and not res.note.startswith("offline table (LLM failed")
    assert res.report["contexts_added"] == res.report["replies_added"] == 0
    assert sum(res.report["rejected"].values()) > 0
    assert res.value["entries"]["Cough"] == policy["entries"]["Cough"]


def test_the_offline_provider_is_the_table():
    env = TableEnv(llm=None, subtask="proactive_safety", ability="proactive_response", description="", folder=None)
    env.tables["scenes"] = {"hazards": {"Shatter": []}}
    res = sp.SoundPolicyTable(classes_from="scenes").resolve(env)
    assert res.writer == "table" and res.value["entries"]["Shatter"]["decision"] == "depends"
    env.tables["scenes"] = {"hazards": {"No such class": []}}
    with pytest.raises(sp.PolicyError):
        sp.SoundPolicyTable(classes_from="scenes").resolve(env)


# ---------------------------------------------------------------- streamaudio policy decide
ITEMS = [{"id": "a", "labels": ["Microwave oven"], "context": "door opened or closed"},
         {"id": "b", "labels": ["Microwave oven"], "context": "arcing / sparking"},
         {"id": "c", "labels": ["Cough"], "context": "a coughing fit"},
         {"id": "d", "labels": ["Ringtone"], "context": None},
         {"id": "e", "labels": ["Not a class"], "context": "x"},
         {"id": "f", "labels": "Cough", "context": "a single light cough"},
         {"id": "g", "labels": [], "context": "x"}]


def write_items(path):
    path.write_text("".join(json.dumps(i) + "\n" for i in ITEMS) + "{not json\n\n[1, 2]\n")
    return path


def check_rows(rows):
    by_id = {r["id"]: r for r in rows if r.get("id")}
    assert len(rows) == len(ITEMS) + 2  # one per non-empty line, bad lines included
    assert by_id["a"]["decision"] == "IGNORE" and by_id["a"]["rule"] == "Microwave oven/context:door opened or closed"
    assert by_id["b"]["decision"] == "RESPOND" and by_id["b"]["emotion"] == "urgent" and by_id["b"]["reply"]
    assert by_id["c"]["decision"] == "RESPOND" and by_id["c"]["rule"] == "Cough/context:a coughing fit"
    assert by_id["d"]["rule"] == "inherited:Telephone<-Ringtone"
    assert by_id["f"]["decision"] == "IGNORE"
    assert "error" in by_id["e"] and "error" in by_id["g"]
    assert sum("error" in r for r in rows) == 4
    assert {r["line"] for r in rows if "error" in r and r["id"] is None} == {8, 10}


def test_policy_decide_offline(tmp_path):
    summary = sp.policy_main(write_items(tmp_path / "items.jsonl"), tmp_path / "out.jsonl")
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    check_rows(rows)
    assert summary["errors"] == 4 and summary["writer"] == "table"


def test_policy_decide_with_the_dev_server(tmp_path):
    with DevServer() as srv:
        summary = sp.policy_main(write_items(tmp_path / "items.jsonl"), tmp_path / "out.jsonl",
                                 llm_base_url=srv.base_url, llm_model="dev-model", cache_dir=tmp_path / "cache")
        first = srv.requests
        assert first > 0
        sp.policy_main(tmp_path / "items.jsonl", tmp_path / "again.jsonl", llm_base_url=srv.base_url,
                       llm_model="dev-model", cache_dir=tmp_path / "cache")
        assert srv.requests == first  # answers come from the cache
    check_rows([json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()])
    assert summary["writer"] == "table" and "rejected" in summary["note"]


def test_policy_decide_command(tmp_path):
    import typer
    from typer.testing import CliRunner

    app = typer.Typer()

    @app.command()
    def other():  # a second command, so that `policy` is a sub-command as in the toolkit's app
        pass

    sp.add_policy_cli(app)
    res = CliRunner().invoke(app, ["policy", "decide", "--in", str(write_items(tmp_path / "i.jsonl")),
                                   "--out", str(tmp_path / "o.jsonl")])
    assert res.exit_code == 0, res.output
    check_rows([json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()])
    res = CliRunner().invoke(app, ["policy", "decide", "--in", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2


def test_streamaudio_policy_decide_from_the_shell(tmp_path):
    """The installed command, once streamaudio/cli.py registers it."""
    from streamaudio.cli import app

    if "policy" not in {g.name for g in app.registered_groups}:
        pytest.skip("streamaudio/cli.py does not register `policy` yet")
    cli = subprocess.run([sys.executable, "-m", "streamaudio", "policy", "decide", "--in",
                          str(write_items(tmp_path / "i.jsonl")), "--out", str(tmp_path / "o.jsonl")],
                         capture_output=True, text=True, check=False)
    assert cli.returncode == 0, cli.stderr
    check_rows([json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()])
