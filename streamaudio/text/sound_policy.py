"""The proactive sound policy over the whole AudioSet ontology: when an always-on assistant
hears a sound, does it respond (and how) or stay silent?

Data: manifests/audioset/ontology.json (the AudioSet ontology, 632 classes, a DAG) and
manifests/policy/sound_policy.yaml (what each class means for the assistant, with
inheritance; its header says the rules). ``compile_policy`` checks the table against the
ontology and flattens it into a JSON-able value: every class names the entry that decides it
(its own, or its nearest decided ancestor's). ``decide`` answers for a heard sound:

    decide(["Cough"], "a coughing fit", policy)
    -> Decision(decision="RESPOND", rule="Cough/context:a coughing fit", reply=..., emotion="normal", style="caring")
    decide(["Smoke detector, smoke alarm", "Alarm"], None, policy).rule
    -> "Smoke detector, smoke alarm"           (its own entry; Alarm is its ancestor, so it is dropped)
    decide(["Fire alarm"], None, policy).rule  -> "inherited:Alarm<-Fire alarm"

A rule says what decided: ``<owner>`` (a plain respond/ignore entry), ``<owner>/context:<key>``
(the context given is a key of the entry), ``<owner>/context~<key>`` (the closest key by shared
words), ``<owner>/default`` (depends, and no context given or none matched); ``<owner>`` is the
class itself or ``inherited:<ancestor><-<class>``.

Several labels (a clip tagged with a class and its parents, or two sounds at once): labels that
are ancestors of another given label are dropped (the specific one speaks); among the rest,
decisions that a plain entry or a matched context made come before depends-defaults, and among
those a respond wins (urgent first), so a clip tagged both "Music" and "Smoke detector, smoke
alarm" is an alarm.

``SoundPolicyTable`` is the recipes' table provider: offline the compiled table; with an LLM,
new contexts and replies for the classes a recipe uses (one request per deciding entry), each
item checked (decision allowed for the entry, emotion allowed for the style, text that is not
schema-shaped filler) and dropped on its own when it fails, the reviewed table always kept.
``policy_main`` is ``streamaudio policy decide``: the same ``decide`` over a JSONL file.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections import deque
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

from .llm import LLMError
from .tables import ResolvedTable, TableEnv, TableProvider, load_yaml, table_path

POLICY = "policy/sound_policy.yaml"
PROMPT = "policy/sound_policy_prompt.yaml"
ONTOLOGY = "audioset/ontology.json"
STAGE = "sound_policy"
DECISIONS = ("respond", "ignore", "depends")
N_CONTEXTS, N_REPLIES = 2, 2
# filler guards for LLM text: lengths in words, and a run of words copied from the prompt
CONTEXT_WORDS, REPLY_WORDS, COPIED_RUN = (3, 16), (4, 45), 5
STOPWORDS = frozenset("a an the of in on at to is are was be been and or with while as by for from it its this "
                      "that there their they them he she his her i my me we our you your".split())


class PolicyError(ValueError):
    """The policy table does not fit the ontology or its own rules, or an item cannot be decided."""


@dataclass(frozen=True)
class Decision:
    decision: str  # RESPOND or IGNORE
    rule: str  # what decided, see the module docstring
    reply: str = ""
    emotion: str = "normal"
    style: str = ""
    label: str = ""  # the heard label that decided
    context: str = ""  # the context key that decided ("" when none did)

    @property
    def respond(self) -> bool:
        return self.decision == "RESPOND"

    def as_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- loading
def emotions() -> tuple[str, ...]:
    from ..format import taxonomy

    return taxonomy().emotions


def load_ontology(folder: Path | None = None) -> list[dict]:
    return json.loads(table_path(ONTOLOGY, folder).read_text())


def _ancestors_by_distance(name: str, parents: dict[str, list[str]]) -> Iterable[tuple[int, str]]:
    """(distance, ancestor) in breadth-first order, each ancestor once at its shortest distance."""
    seen = {name}
    todo = deque((1, p) for p in parents.get(name, []))
    while todo:
        d, a = todo.popleft()
        if a in seen:
            continue
        seen.add(a)
        yield d, a
        todo.extend((d + 1, p) for p in parents.get(a, []))


def _nearest_decided(name: str, parents: dict[str, list[str]], explicit: dict) -> list[str]:
    """The decided (explicit) ancestors at the smallest distance, in ontology order."""
    best, found = None, []
    for d, a in _ancestors_by_distance(name, parents):
        if best is not None and d > best:
            break
        if a in explicit:
            best = d
            found.append(a)
    return found


def _outcome(raw: dict, where: str, styles: dict, emos: tuple[str, ...]) -> tuple[dict, list[str]]:
    """A respond/ignore outcome (decision, style, emotion, replies) and its problems."""
    problems = []
    decision = raw.get("decision")
    if decision not in ("respond", "ignore"):
        return {}, [f"{where}: decision {decision!r} is not respond or ignore"]
    out = {"decision": decision, "style": "", "emotion": "normal", "replies": []}
    if decision == "respond":
        style, emotion = raw.get("style"), raw.get("emotion", "normal")
        replies = [" ".join(str(r).split()) for r in raw.get("replies") or []]
        if style not in styles:
            problems.append(f"{where}: style {style!r} is not one of {sorted(styles)}")
        elif emotion not in styles[style]["emotions"]:
            problems.append(f"{where}: emotion {emotion!r} is not allowed for style {style!r}")
        if emotion not in emos:
            problems.append(f"{where}: emotion {emotion!r} is not in manifests/taxonomy.yaml")
        if not replies or not all(replies):
            problems.append(f"{where}: a respond decision needs replies")
        out.update(style=style or "", emotion=emotion, replies=replies)
    return out, problems


def policy_problems(table: dict, ontology: list[dict], emos: tuple[str, ...] | None = None) -> tuple[list[str], dict]:
    """(problems, compiled policy). The compiled value is only usable when there are no problems."""
    emos = emos or emotions()
    problems: list[str] = []
    names = {r["id"]: r["name"] for r in ontology}
    if len(set(names.values())) != len(names):
        problems.append("ontology: display names are not unique")
    parents: dict[str, list[str]] = {}
    for r in ontology:
        for c in r["child_ids"]:
            if c not in names:
                problems.append(f"ontology: {r['name']!r} names an unknown child {c}")
                continue
            parents.setdefault(names[c], []).append(r["name"])
    order = [r["name"] for r in ontology]
    styles = table.get("styles") or {}
    classes = table.get("classes") or {}
    for name in classes:
        if name not in parents and name not in order:
            problems.append(f"classes.{name}: not an AudioSet display name")
    explicit = {n: e for n, e in classes.items() if n in set(order)}
    entries: dict[str, dict] = {}
    for name, raw in explicit.items():
        where = f"classes.{name}"
        decision = raw.get("decision")
        if decision not in DECISIONS:
            problems.append(f"{where}: decision {decision!r} is not one of {DECISIONS}")
            continue
        entry = {"decision": decision, "reason": raw.get("reason", ""), "contexts": []}
        if decision == "depends":
            default, probs = _outcome(raw.get("default") or {}, f"{where}.default", styles, emos)
            problems += probs
            entry["outcome"] = default
        else:
            outcome, probs = _outcome(raw, where, styles, emos)
            problems += probs
            entry["outcome"] = outcome
        keys = set()
        for i, c in enumerate(raw.get("contexts") or []):
            key = " ".join(str(c.get("context", "")).split())
            cwhere = f"{where}.contexts[{i}]"
            if not key:
                problems.append(f"{cwhere}: no context text")
                continue
            if _norm(key) in keys:
                problems.append(f"{cwhere}: context {key!r} given twice")
            keys.add(_norm(key))
            outcome, probs = _outcome(c, cwhere, styles, emos)
            problems += probs
            if decision != "depends" and outcome.get("decision") not in (None, decision):
                problems.append(f"{cwhere}: a {decision} class's contexts must all {decision} "
                                f"(make the class depends to let the context decide)")
            entry["contexts"].append({"context": key, "keywords": [str(k) for k in c.get("keywords") or []],
                                      **outcome, "writer": "table"})
        if decision == "depends":
            kinds = {c.get("decision") for c in entry["contexts"]}
            if not {"respond", "ignore"} <= kinds:
                problems.append(f"{where}: a depends class needs at least one respond and one ignore context")
        entries[name] = entry
    owner: dict[str, str] = {}
    for name in order:
        if name in entries:
            owner[name] = name
            continue
        near = _nearest_decided(name, parents, entries)
        if not near:
            problems.append(f"{name!r}: no decided ancestor (every root needs an entry)")
            continue
        if len(near) > 1 and not all(entries[n]["decision"] == "ignore" for n in near):
            problems.append(f"{name!r}: its nearest decided ancestors disagree ({', '.join(near)}): "
                            "give it an entry of its own")
            continue
        owner[name] = near[0]
    # an override is deliberate: an entry whose decision differs from what it would inherit says why
    for name, entry in entries.items():
        near = _nearest_decided(name, parents, entries)
        inherited = {entries[n]["decision"] for n in near}
        if near and inherited != {entry["decision"]} and not str(entry["reason"]).strip():
            problems.append(f"classes.{name}: decision {entry['decision']} overrides the inherited "
                            f"{'/'.join(sorted(inherited))} (from {', '.join(near)}) without a reason")
    compiled = {"version": table.get("version", 1), "styles": styles, "emotions": list(emos),
                "mids": {mid: n for mid, n in names.items()}, "parents": parents, "owner": owner,
                "entries": entries}
    compiled["sha"] = hashlib.sha256(json.dumps(compiled, sort_keys=True).encode()).hexdigest()[:16]
    return problems, compiled


def compile_policy(table: dict, ontology: list[dict]) -> dict:
    problems, compiled = policy_problems(table, ontology)
    if problems:
        shown = "\n  ".join(problems[:20])
        raise PolicyError(f"sound policy: {len(problems)} problem(s):\n  {shown}")
    return compiled


@lru_cache(maxsize=8)
def _load_cached(policy_path: str, mtime_ns: int, onto_path: str, onto_mtime: int) -> str:
    table = load_yaml(Path(policy_path))
    ontology = json.loads(Path(onto_path).read_text())
    return json.dumps(compile_policy(table, ontology))


def load_policy(path: str = POLICY, folder: Path | None = None) -> dict:
    """The compiled policy (a fresh copy: callers may add to it)."""
    p = table_path(path, folder)
    o = table_path(ONTOLOGY, folder)
    return json.loads(_load_cached(str(p), p.stat().st_mtime_ns, str(o), o.stat().st_mtime_ns))


# ---------------------------------------------------------------- deciding
def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", str(text).lower()).split())


def _stem(word: str) -> str:
    w = word.lower().strip("'")
    if w.endswith("'s"):
        w = w[:-2]
    for suffix, keep in (("ing", 4), ("ed", 4), ("es", 4), ("s", 3)):
        if w.endswith(suffix) and len(w) - len(suffix) >= keep - 1 and not w.endswith("ss"):
            return w[: -len(suffix)]
    return w


def tokens(text: str) -> set[str]:
    return {_stem(w) for w in re.findall(r"[a-z0-9']+", str(text).lower()) if w not in STOPWORDS and len(w) > 1}


def label_name(label: str, policy: dict) -> str | None:
    """An AudioSet display name for a label given as a name (any case) or a mid."""
    if label in policy["owner"]:
        return label
    if label in policy["mids"]:
        return policy["mids"][label]
    low = {n.lower(): n for n in policy["owner"]}
    return low.get(" ".join(str(label).split()).lower())


def ancestors(name: str, policy: dict) -> set[str]:
    return {a for _, a in _ancestors_by_distance(name, policy["parents"])}


def match_context(entry: dict, context: str | None, names: Iterable[str] = ()) -> tuple[dict | None, str]:
    """(the entry's context the text picks, how: "exact" / "overlap" / "" none / "ambiguous")."""
    ctxs = entry.get("contexts") or []
    if not context or not str(context).strip() or not ctxs:
        return None, ""
    norm = _norm(context)
    for c in ctxs:
        if _norm(c["context"]) == norm:
            return c, "exact"
    sets = [tokens(c["context"]) | tokens(" ".join(c["keywords"])) for c in ctxs]
    shared = set.intersection(*sets) if len(sets) > 1 else set()
    for n in names:  # the class's own name says nothing about the situation
        shared |= tokens(n)
    heard = tokens(context)
    scores = [len(heard & (s - shared)) for s in sets]
    best = max(scores)
    if best == 0:
        return None, ""
    top = [c for c, s in zip(ctxs, scores) if s == best]
    if len({(c["decision"], c["emotion"]) for c in top}) > 1:
        return None, "ambiguous"
    return top[0], "overlap"


def _stable_choice(items: list[str], *salt) -> str:
    h = int(hashlib.sha256(json.dumps(salt, sort_keys=True).encode()).hexdigest()[:8], 16)
    return items[h % len(items)]


def decide(labels: list[str] | str, context: str | None = None, policy: dict | None = None,
           choose: Callable[[list[str]], str] | None = None) -> Decision:
    """What the assistant does on hearing ``labels`` (AudioSet names or mids) in ``context``
    (free text, or None). ``choose`` picks a reply (a recipe passes its seeded pick); by
    default a stable hash of the labels and context picks it. PolicyError when no label is an
    AudioSet class."""
    policy = policy if policy is not None else load_policy()
    labels = [labels] if isinstance(labels, str) else list(labels or [])
    known = list(dict.fromkeys(n for n in (label_name(lab, policy) for lab in labels) if n))
    if not known:
        raise PolicyError(f"no AudioSet class among the labels {labels!r}")
    above = set().union(*(ancestors(n, policy) for n in known))
    specific = [n for n in known if n not in above]
    results = []
    for pos, name in enumerate(specific):
        owner = policy["owner"][name]
        entry = policy["entries"][owner]
        who = owner if owner == name else f"inherited:{owner}<-{name}"
        ctx, how = match_context(entry, context, (name, owner))
        if ctx is not None:
            outcome, rule, definite = ctx, f"{who}/context{':' if how == 'exact' else '~'}{ctx['context']}", True
        elif entry["decision"] == "depends":
            outcome, rule, definite = entry["outcome"], f"{who}/default", False
        else:
            outcome, rule, definite = entry["outcome"], who, True
        results.append((definite, outcome, rule, name, ctx["context"] if ctx else "", pos))
    pool = [r for r in results if r[0]] or results
    pool.sort(key=lambda r: (r[1]["decision"] != "respond", r[1]["emotion"] != "urgent", r[5]))
    _, outcome, rule, name, key, _ = pool[0]
    reply = ""
    if outcome["decision"] == "respond":
        replies = outcome["replies"]
        reply = choose(replies) if choose else _stable_choice(replies, known, context or "")
    return Decision(decision=outcome["decision"].upper(), rule=rule, reply=reply,
                    emotion=outcome["emotion"] if outcome["decision"] == "respond" else "normal",
                    style=outcome["style"], label=name, context=key)


def entry_for(label: str, policy: dict) -> tuple[str, dict]:
    """(owner, entry) deciding an AudioSet class."""
    name = label_name(label, policy)
    if name is None:
        raise PolicyError(f"{label!r} is not an AudioSet class")
    owner = policy["owner"][name]
    return owner, policy["entries"][owner]


def contexts_for(label: str, policy: dict) -> list[dict]:
    """The contexts of the entry deciding ``label`` (table and LLM-written ones)."""
    return list(entry_for(label, policy)[1]["contexts"])


def can_respond(label: str, policy: dict) -> bool:
    """Whether some context (or the default) of the entry deciding ``label`` responds: false
    only for sounds the assistant never answers, whatever the situation."""
    _, entry = entry_for(label, policy)
    return any(o.get("decision") == "respond" for o in [entry["outcome"], *entry["contexts"]])


def label_actions(policy: dict, labels: Iterable[str], context: str | None = None) -> dict:
    """``{label: {action, emotion, replies}}`` under one context (None: the defaults): the shape
    of the older per-label tables (policy/proactive_household.yaml), for code that reads it."""
    out = {}
    for label in labels:
        owner, entry = entry_for(label, policy)
        d = decide([label], context, policy, choose=lambda xs: xs[0])
        ctx = next((c for c in entry["contexts"] if c["context"] == d.context), None)
        replies = (ctx or entry["outcome"]).get("replies") or []
        out[label] = {"action": d.decision.lower(), "emotion": d.emotion, "replies": list(replies), "rule": d.rule}
    return out


# ---------------------------------------------------------------- the LLM path
FIELD_NAMES = ("context", "contexts", "keyword", "keywords", "reply", "replies", "decision", "style", "emotion")


def copied_from(text: str, prompt: str, run: int = COPIED_RUN) -> bool:
    """True when ``text`` repeats ``run`` consecutive words of the prompt (an echo, not writing)."""
    words = re.findall(r"[a-z0-9']+", str(text).lower())
    src = " " + " ".join(re.findall(r"[a-z0-9']+", prompt.lower())) + " "
    return any(f" {' '.join(words[i:i + run])} " in src for i in range(len(words) - run + 1))


def text_problem(text, prompt: str, words: tuple[int, int], sentence: bool, seen: set[str]) -> str:
    """Why a piece of LLM text is unusable ("" when it is fine)."""
    if not isinstance(text, str):
        return "not text"
    t = " ".join(text.split())
    if re.match(rf"^({'|'.join(FIELD_NAMES)})\d*\s*:", t, re.I):
        return "schema-shaped filler"
    n = len(re.findall(r"[A-Za-z']+", t))
    if not words[0] <= n <= words[1]:
        return f"{n} words, not {words[0]}-{words[1]}"
    if copied_from(t, prompt):
        return "copied from the prompt"
    if sentence and not re.search(r"[.!?]$", t):
        return "not a finished sentence"
    if _norm(t) in seen:
        return "a repeat"
    return ""


def _schema(entry: dict, styles: dict, emos: list[str], targets: list[str], n_contexts: int, n_replies: int) -> dict:
    allowed = ["respond", "ignore"] if entry["decision"] == "depends" else [entry["decision"]]
    item = {"type": "object", "additionalProperties": False,
            "required": ["context", "keywords", "decision", "style", "emotion", "replies"],
            # lengths are loose here and checked item by item (text_problem): a schema that is too
            # strict turns one bad field into a failed request, and every other item with it
            "properties": {"context": {"type": "string", "minLength": 8, "maxLength": 400},
                           "keywords": {"type": "array", "minItems": 2, "maxItems": 8,
                                        "items": {"type": "string", "minLength": 2, "maxLength": 400}},
                           "decision": {"type": "string", "enum": allowed},
                           "style": {"type": "string", "enum": sorted(styles)},
                           "emotion": {"type": "string", "enum": list(emos)},
                           "replies": {"type": "array", "minItems": 0, "maxItems": 3,
                                       "items": {"type": "string", "minLength": 8, "maxLength": 400}}}}
    props = {"contexts": {"type": "array", "minItems": n_contexts, "maxItems": n_contexts, "items": item}}
    if targets:
        props["replies"] = {"type": "array", "minItems": n_replies, "maxItems": n_replies * len(targets), "items": {
            "type": "object", "additionalProperties": False, "required": ["context", "reply"],
            "properties": {"context": {"type": "string", "enum": targets},
                           "reply": {"type": "string", "minLength": 8, "maxLength": 400}}}}
    return {"type": "object", "additionalProperties": False, "required": sorted(props), "properties": props}


def _request(owner: str, heard: list[str], entry: dict, policy: dict, descriptions: dict, prompt: dict,
             n_contexts: int, n_replies: int) -> tuple[list[dict], dict, list[str]]:
    targets = [c["context"] for c in entry["contexts"] if c["decision"] == "respond"]
    if entry["outcome"].get("decision") == "respond":
        targets.append("default")
    lines = []
    for c in entry["contexts"]:
        lines.append(f"- {c['context']} -> {c['decision']}" + (f" ({c['style']}, {c['emotion']}): {c['replies'][0]}"
                                                               if c["decision"] == "respond" else ""))
    o = entry["outcome"]
    lines.append(f"- default (context unknown) -> {o['decision']}" +
                 (f" ({o['style']}, {o['emotion']}): {o['replies'][0]}" if o["decision"] == "respond" else ""))
    styles = "\n".join(f"- {k}: {v['about']} (emotions: {', '.join(v['emotions'])})" for k, v in policy["styles"].items())
    user = prompt["user"].format(
        sound=owner, heard=", ".join(heard), description=descriptions.get(owner, ""), decision=entry["decision"],
        reason=entry.get("reason") or "", contexts="\n".join(lines), styles=styles, n_contexts=n_contexts,
        n_replies=n_replies, targets=", ".join(targets) or "(none)")
    messages = [{"role": "system", "content": prompt["system"]}, {"role": "user", "content": user}]
    return messages, _schema(entry, policy["styles"], policy["emotions"], targets, n_contexts, n_replies), targets


def _add_llm(entry: dict, res: dict, prompt_text: str, styles: dict, tag: str, rejected: dict) -> tuple[int, int]:
    """Checked LLM contexts and replies added to ``entry`` in place; (contexts, replies) added."""
    def reject(why):
        rejected[why] = rejected.get(why, 0) + 1

    allowed = ("respond", "ignore") if entry["decision"] == "depends" else (entry["decision"],)
    seen_ctx = {_norm(c["context"]) for c in entry["contexts"]}
    all_replies = {_norm(r) for c in [*entry["contexts"], entry["outcome"]] for r in c.get("replies") or []}
    n_ctx = n_rep = 0
    for item in res.get("contexts") or []:
        why = text_problem(item.get("context"), prompt_text, CONTEXT_WORDS, False, seen_ctx)
        decision, style, emotion = item.get("decision"), item.get("style"), item.get("emotion")
        if not why and decision not in allowed:
            why = f"decision {decision!r} not allowed for a {entry['decision']} class"
        if not why and decision == "respond" and (style not in styles or emotion not in styles[style]["emotions"]):
            why = f"emotion {emotion!r} not allowed for style {style!r}"
        keywords = [k for k in (item.get("keywords") or []) if isinstance(k, str) and re.fullmatch(r"[A-Za-z' -]{2,24}", k)
                    and not re.match(rf"^({'|'.join(FIELD_NAMES)})\b", k, re.I)]
        if not why and len(keywords) < 2:
            why = "fewer than 2 usable keywords"
        replies = []
        if not why and decision == "respond":
            for r in item.get("replies") or []:
                rwhy = text_problem(r, prompt_text, REPLY_WORDS, True, all_replies)
                if rwhy:
                    reject(f"reply: {rwhy}")
                    continue
                replies.append(" ".join(r.split()))
                all_replies.add(_norm(r))
            if not replies:
                why = "no usable reply"
        if why:
            reject(f"context: {why}")
            continue
        key = " ".join(item["context"].split())
        seen_ctx.add(_norm(key))
        entry["contexts"].append({"context": key, "keywords": keywords, "decision": decision,
                                  "style": style if decision == "respond" else "",
                                  "emotion": emotion if decision == "respond" else "normal",
                                  "replies": replies, "writer": tag})
        n_ctx += 1
    by_key = {c["context"]: c for c in entry["contexts"]}
    for item in res.get("replies") or []:
        target = entry["outcome"] if item.get("context") == "default" else by_key.get(item.get("context"))
        if target is None or target.get("decision") != "respond":
            reject("reply: unknown target")
            continue
        why = text_problem(item.get("reply"), prompt_text, REPLY_WORDS, True, all_replies)
        if why:
            reject(f"reply: {why}")
            continue
        target["replies"].append(" ".join(item["reply"].split()))
        all_replies.add(_norm(item["reply"]))
        n_rep += 1
    return n_ctx, n_rep


def enrich(policy: dict, classes: Iterable[str], llm, folder: Path | None = None,
           n_contexts: int = N_CONTEXTS, n_replies: int = N_REPLIES) -> tuple[dict, str, str, dict]:
    """(policy with checked LLM contexts and replies for ``classes``, writer, note, report).
    One request per deciding entry that can reply (respond or depends); an item that fails its
    checks is dropped on its own."""
    prompt = load_yaml(table_path(PROMPT, folder))
    descriptions = {r["name"]: r["description"] for r in load_ontology(folder)}
    heard_by_owner: dict[str, list[str]] = {}
    for c in classes:
        name = label_name(c, policy)
        if name is None:
            raise PolicyError(f"{c!r} is not an AudioSet class")
        heard_by_owner.setdefault(policy["owner"][name], []).append(name)
    # a plain ignore entry has nothing to reply and its contexts could only say "ignore" again
    owners = sorted(o for o in heard_by_owner if policy["entries"][o]["decision"] != "ignore")
    reqs, prompts = [], []
    for o in owners:
        messages, schema, _ = _request(o, heard_by_owner[o], policy["entries"][o], policy, descriptions, prompt,
                                       n_contexts, n_replies)
        reqs.append((messages, schema))
        prompts.append(messages[1]["content"])
    results = llm.map_json(STAGE, reqs)
    tag = llm.config.tag
    added_ctx = added_rep = 0
    rejected: dict[str, int] = {}
    failed, offline = {}, {}
    llm_owners = []
    for o, res, ptext in zip(owners, results, prompts):
        if isinstance(res, LLMError):
            (failed if res.transient else offline)[o] = str(res)
            continue
        c, r = _add_llm(policy["entries"][o], res, ptext, policy["styles"], tag, rejected)
        added_ctx, added_rep = added_ctx + c, added_rep + r
        if c or r:
            llm_owners.append(o)
        else:
            offline[o] = "no usable context or reply"
    policy["sha"] = hashlib.sha256(json.dumps({k: v for k, v in policy.items() if k != "sha"},
                                              sort_keys=True).encode()).hexdigest()[:16]
    report = {"entries": len(owners), "llm_entries": llm_owners, "contexts_added": added_ctx,
              "replies_added": added_rep, "rejected": dict(sorted(rejected.items())),
              "offline_entries": {**offline, **failed}}
    summary = (f"{tag}: {added_ctx} context(s) and {added_rep} reply(ies) added for {len(llm_owners)} of "
               f"{len(owners)} entr(ies), {sum(rejected.values())} item(s) rejected")
    if failed:
        first = next(iter(failed))
        note = f"offline table (LLM failed: {len(failed)} entr(ies), first {first!r}: {failed[first]}); {summary}"
    else:
        note = summary
    return policy, (tag if llm_owners else "table"), note, report


SCENE_KEYS = ("hazards", "benign", "scenes")


def scene_classes(table: dict) -> list[str]:
    """The classes a scene table uses: its ``classes`` list, else the keys of its hazards,
    benign and scenes mappings."""
    if table.get("classes"):
        return list(table["classes"])
    return [c for k in SCENE_KEYS for c in (table.get(k) or {})]


class SoundPolicyTable(TableProvider):
    """The compiled sound policy (every AudioSet class). With an LLM, checked extra contexts and
    replies for the classes the recipe uses: ``classes``, and/or the ``classes`` list of an
    earlier table named by ``classes_from`` (the recipe's scenario table)."""
    writes_text = True

    def __init__(self, path: str = POLICY, classes: Iterable[str] = (), classes_from: str | None = None,
                 n_contexts: int = N_CONTEXTS, n_replies: int = N_REPLIES):
        self.path, self.classes, self.classes_from = path, tuple(classes), classes_from
        self.n_contexts, self.n_replies = n_contexts, n_replies

    def __repr__(self) -> str:
        return f"SoundPolicyTable({self.path!r}, classes_from={self.classes_from!r})"

    def files(self, folder):
        return [table_path(self.path, folder), table_path(ONTOLOGY, folder), table_path(PROMPT, folder)]

    def wanted(self, env: TableEnv) -> list[str]:
        names = list(self.classes)
        if self.classes_from:
            if self.classes_from not in env.tables:
                raise KeyError(f"SoundPolicyTable needs the {self.classes_from!r} table declared before it")
            names += scene_classes(env.tables[self.classes_from])
        return list(dict.fromkeys(names))

    def resolve(self, env: TableEnv) -> ResolvedTable:
        policy = load_policy(self.path, env.folder)
        policy["writer"] = "table"
        wanted = self.wanted(env)
        for c in wanted:
            if label_name(c, policy) is None:
                raise PolicyError(f"{c!r} (a class the recipe uses) is not an AudioSet class")
        if env.llm is None or not wanted:
            return ResolvedTable(policy, writer="table", note="offline table")
        policy, writer, note, report = enrich(policy, wanted, env.llm, env.folder, self.n_contexts, self.n_replies)
        policy["writer"] = writer
        return ResolvedTable(policy, writer=writer, note=note, report=report)


# ---------------------------------------------------------------- streamaudio policy decide
def decide_items(lines: Iterable[str], policy: dict) -> Iterable[dict]:
    """One output row per JSONL input line: the decision, or an error row (never an exception)."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        item_id = None
        try:
            item = json.loads(line)
            if not isinstance(item, dict):
                raise PolicyError("an item is a JSON object {id, labels, context}")
            item_id = item.get("id")
            labels = item.get("labels")
            if isinstance(labels, str):
                labels = [labels]
            if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels) or not labels:
                raise PolicyError("labels must be a non-empty list of AudioSet names")
            context = item.get("context")
            if context is not None and not isinstance(context, str):
                raise PolicyError("context must be text or null")
            d = decide(labels, context, policy)
            unknown = [lab for lab in labels if label_name(lab, policy) is None]
            yield {"id": item_id, "decision": d.decision, "rule": d.rule, "reply": d.reply, "emotion": d.emotion,
                   "style": d.style, "label": d.label, "context_key": d.context, **({"unknown_labels": unknown} if unknown else {})}
        except (json.JSONDecodeError, PolicyError) as exc:
            yield {"id": item_id, "line": n, "error": f"{type(exc).__name__}: {exc}"}


def policy_main(in_path: Path, out_path: Path, llm_base_url: str | None = None, llm_model: str | None = None,
                cache_dir: Path | None = None, policy_path: str = POLICY) -> dict:
    """``streamaudio policy decide``: decide every item of ``in_path`` into ``out_path``; with an
    LLM, the classes the items name first get checked LLM contexts and replies (the same provider
    the recipes use). Returns a summary."""
    lines = Path(in_path).read_text().splitlines()
    policy = load_policy(policy_path)
    writer, note = "table", "offline table"
    if llm_base_url:
        from .llm import LLMClient, LLMConfig

        labels = []
        for line in lines:
            try:
                item = json.loads(line)
                labs = item.get("labels") if isinstance(item, dict) else None
                labs = [labs] if isinstance(labs, str) else labs
                labels += [n for n in (label_name(x, policy) for x in labs or [] if isinstance(x, str)) if n]
            except (json.JSONDecodeError, AttributeError):
                continue
        llm = LLMClient(LLMConfig(base_url=llm_base_url, model=llm_model or "default"),
                        cache_dir=str(cache_dir) if cache_dir else None)
        env = TableEnv(llm=llm, subtask="policy_decide", ability="proactive_response", description="",
                       folder=None)
        res = SoundPolicyTable(policy_path, classes=list(dict.fromkeys(labels))).resolve(env)
        policy, writer, note = res.value, res.writer, res.note
    rows = list(decide_items(lines, policy))
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    Path(out_path).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return {"items": len(rows), "errors": sum("error" in r for r in rows),
            "respond": sum(r.get("decision") == "RESPOND" for r in rows),
            "ignore": sum(r.get("decision") == "IGNORE" for r in rows), "writer": writer, "note": note}


def add_policy_cli(app) -> None:
    """Register ``streamaudio policy decide`` on the toolkit's typer app."""
    import typer

    policy_app = typer.Typer(add_completion=False, no_args_is_help=True,
                             help="The proactive sound policy over the AudioSet ontology.")

    @policy_app.command("decide")
    def decide_cmd(in_path: Path = typer.Option(..., "--in", help="JSONL items {id, labels: [AudioSet names], context}"),
                   out_path: Path = typer.Option(..., "--out", help="JSONL decisions to write, one per item"),
                   llm_base_url: str = typer.Option(None, help="OpenAI-compatible endpoint: the LLM adds checked "
                                                             "contexts and replies for the items' classes"),
                   llm_model: str = typer.Option(None, help="model name at that endpoint"),
                   cache_dir: Path = typer.Option(None, help="LLM answer cache (default: none)"),
                   table: str = typer.Option(POLICY, help="policy table (a path under manifests/, or a file)")):
        """Decide RESPOND or IGNORE (with the rule and a reply) for each item; bad lines give error rows."""
        if not in_path.is_file():
            typer.echo(f"error: {in_path} not found", err=True)
            raise typer.Exit(2)
        try:
            summary = policy_main(in_path, out_path, llm_base_url, llm_model, cache_dir, table)
        except (PolicyError, FileNotFoundError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2)
        typer.echo(json.dumps(summary), err=True)

    app.add_typer(policy_app, name="policy")


__all__ = ["Decision", "PolicyError", "SoundPolicyTable", "add_policy_cli", "can_respond", "compile_policy",
           "contexts_for", "decide", "label_actions",
           "decide_items", "entry_for", "load_ontology", "load_policy", "match_context", "policy_main",
           "policy_problems", "scene_classes", "tokens"]
