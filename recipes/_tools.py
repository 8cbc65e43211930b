"""Helpers shared by the tool-calling recipes (agent_tool_call, agent_noisy_command): the tool
registry (a table provider that loads manifests/tools/ and checks it), the tool call a spoken
command stands for, and the planning both recipes share. Modules starting with ``_`` are not
recipes.

The registry (manifests/tools/):
- ``tools.yaml``: the tools, each with its JSON Schema file (draft 2020-12), description and
  spoken phrasings;
- ``commands.yaml``: spoken command key -> {tool, arguments, confirm, say}. A key is the slot
  value of a spoken command (manifests/spoken_prompts/agent_commands.yaml, labels
  [agent_cmd_<group>, "tool_call=<key>"]), so what the user says determines the call;
- ``confirmations.yaml`` (an AnswerTemplates table, resolved before the registry): the short
  confirmations, one key per kind of call, filled with the command's ``say`` words.

Every schema is checked against the draft 2020-12 metaschema (and must be an object schema that
allows no other properties, so a call cannot carry what the tool does not define); every
command's arguments are validated against its tool's schema, and its ``say`` must fill exactly
its confirmation's placeholders. Any failure is a RegistryError naming every broken entry: the
table is fixed, not worked around. A plan validates each call it emits again (PlanError if one
fails), so no unchecked call reaches an episode whatever the table went through.
"""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np

from streamaudio.plan import (EpisodePlan, PlanContext, PlanError, SegmentPlan, TableProvider, TurnPlan, background_bed,
                              pick)
from streamaudio.text.tables import ResolvedTable, TableEnv, load_yaml, table_path
from streamaudio.text.templates import placeholders

from ._instr import clip_end, fill, part_text, split_at_word
from ._speech import aligners

SLOT = "tool_call"  # the spoken commands' slot: labels "tool_call=<command key>"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
PROMPT_FIELDS = ("$schema", "$id", "title", "description")  # schema keys the system prompt leaves out


class RegistryError(ValueError):
    """The tool registry breaks its own rules (every problem named)."""


# ---------------------------------------------------------------- the registry
class ToolRegistry(TableProvider):
    """The tools (schemas, descriptions), the spoken commands' calls and their confirmations,
    checked when the build resolves the table. ``confirmations``: the name of the
    AnswerTemplates table declared before this one."""

    def __init__(self, index: str = "tools/tools.yaml", commands: str = "tools/commands.yaml",
                 confirmations: str = "confirmations"):
        self.index, self.commands, self.confirmations = index, commands, confirmations

    def __repr__(self) -> str:
        return f"ToolRegistry({self.index!r}, {self.commands!r})"

    def files(self, folder):
        index = table_path(self.index, folder)
        schemas = [index.parent / t["schema"] for t in (load_yaml(index) or {}).get("tools") or []
                   if isinstance(t, dict) and t.get("schema")]
        return [index, table_path(self.commands, folder), *schemas]

    def resolve(self, env: TableEnv) -> ResolvedTable:
        confirmations = env.tables.get(self.confirmations)
        if confirmations is None:
            raise RegistryError(f"the registry needs the {self.confirmations!r} table declared before it")
        value = load_registry(table_path(self.index, env.folder), table_path(self.commands, env.folder),
                              confirmations["templates"])
        note = f"{len(value['tools'])} tools, {len(value['commands'])} commands, every call valid"
        return ResolvedTable(value, writer="table", note=note,
                             report={"tools": len(value["tools"]), "commands": len(value["commands"])})


def load_registry(index_path: Path, commands_path: Path, confirmations: dict[str, list[str]]) -> dict:
    """{"tools": {name: {description, schema, phrasings}}, "commands": {key: {tool, arguments,
    confirm, say}}}; RegistryError listing every problem."""
    problems: list[str] = []
    index = load_yaml(index_path) or {}
    tools: dict[str, dict] = {}
    broken: set[str] = set()  # tools whose schema is unusable: their calls cannot be checked
    for k, entry in enumerate(index.get("tools") or []):
        entry = entry if isinstance(entry, dict) else {}
        name = entry.get("name")
        where = f"{index_path.name}: tools[{k}] ({name or '?'}, {entry.get('schema') or '?'})"
        if not name or not entry.get("schema") or not entry.get("description"):
            problems.append(f"{where}: needs name, schema and description")
            continue
        if name in tools:
            problems.append(f"{where}: a second tool named {name!r}")
            continue
        try:
            schema = json.loads((index_path.parent / entry["schema"]).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            problems.append(f"{where}: schema {entry['schema']}: {' '.join(str(exc).split())[:120]}")
            continue
        found = schema_problems(schema, name, entry["description"])
        problems += [f"{where}: {p}" for p in found]
        if found:
            broken.add(name)
        tools[name] = {"description": entry["description"], "schema": schema,
                       "phrasings": list(entry.get("phrasings") or [])}
    if not tools:
        problems.append(f"{index_path.name}: no tools")
    commands: dict[str, dict] = {}
    for key, cmd in ((load_yaml(commands_path) or {}).get("commands") or {}).items():
        where = f"{commands_path.name}: {key}"
        if not isinstance(cmd, dict) or not isinstance(cmd.get("arguments"), dict):
            problems.append(f"{where}: needs tool, arguments (a mapping), confirm and say")
            continue
        tool, say = cmd.get("tool"), cmd.get("say") or {}
        if not isinstance(say, dict):
            problems.append(f"{where}: say must be a mapping placeholder -> words")
            continue
        if tool not in tools:
            problems.append(f"{where}: unknown tool {tool!r}")
            continue
        if tool in broken:
            problems.append(f"{where}: cannot be checked, the schema of {tool!r} is not usable")
        else:
            problems += [f"{where}: {p}" for p in call_problems(tools[tool]["schema"], cmd["arguments"])]
        templates = confirmations.get(cmd.get("confirm"))
        if not templates:
            problems.append(f"{where}: confirmation {cmd.get('confirm')!r} is not a key of the confirmations table")
        elif not placeholders(templates[0]):
            # a paraphrase is checked by its placeholders: without one, any text (an LLM's
            # filler, a generic "Okay, done.") would pass as this command's confirmation
            problems.append(f"{where}: confirmation {cmd['confirm']!r} has no placeholder")
        elif set(say) != placeholders(templates[0]):
            problems.append(f"{where}: say gives {sorted(say)}, confirmation {cmd['confirm']!r} needs "
                            f"{sorted(placeholders(templates[0]))}")
        commands[str(key)] = {"tool": tool, "arguments": cmd["arguments"], "confirm": cmd.get("confirm"),
                              "say": {str(k): str(v) for k, v in say.items()}}
    if not commands:
        problems.append(f"{commands_path.name}: no commands")
    if problems:
        raise RegistryError("tool registry: " + "; ".join(problems))
    return {"tools": tools, "commands": commands}


def schema_problems(schema: dict, name: str, description: str) -> list[str]:
    """Why a tool schema is not usable ([] when it is)."""
    if not isinstance(schema, dict):
        return ["the schema is not a JSON object"]
    out = []
    if schema.get("$schema") != DRAFT:
        out.append(f"$schema is {schema.get('$schema')!r}, not {DRAFT}")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        out.append(f"not a valid draft 2020-12 schema: {exc.message}")
    if schema.get("title") != name:
        out.append(f"title {schema.get('title')!r} is not the tool's name")
    if schema.get("description") != description:
        out.append("its description differs from the index's")
    if schema.get("type") != "object" or schema.get("additionalProperties") is not False:
        out.append("a tool's arguments are an object with additionalProperties: false")
    return out


def call_problems(schema: dict, arguments: dict) -> list[str]:
    """Why ``arguments`` do not validate against a tool's schema ([] when they do)."""
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(arguments), key=lambda e: list(e.path))
    return [f"{'/'.join(map(str, e.path)) or '(arguments)'}: {e.message}" for e in errors]


def tool_call(registry: dict, key: str) -> dict:
    """The call a spoken command stands for, {"name", "arguments"}, validated again (PlanError
    when it does not validate: a table changed after it was checked)."""
    cmd = registry["commands"].get(key)
    if cmd is None:
        raise PlanError(f"spoken command {key!r} has no entry in tools/commands.yaml")
    problems = call_problems(registry["tools"][cmd["tool"]]["schema"], cmd["arguments"])
    if problems:
        raise PlanError(f"the call of {key!r} does not validate against {cmd['tool']}: {'; '.join(problems)}")
    return {"name": cmd["tool"], "arguments": cmd["arguments"]}


def call_json(call: dict) -> str:
    """A call as the turn's tool_call text: name first (a model writes the tool before its
    arguments), arguments in the table's order, compact."""
    return json.dumps({"name": call["name"], "arguments": call["arguments"]}, ensure_ascii=False, separators=(",", ":"))


def tool_definition(name: str, tool: dict) -> dict:
    """A tool as a system prompt lists it: name, description and the parameters' schema."""
    return {"name": name, "description": tool["description"],
            "parameters": {k: v for k, v in tool["schema"].items() if k not in PROMPT_FIELDS}}


def tools_block(rng, registry: dict, called: list[str], cfg: dict) -> str:
    """The tool definitions a system prompt ends with: every tool the episode calls plus others
    drawn at random (so the model learns to read the list, not a fixed set), in a random
    order, one JSON object per line under the table's header."""
    names = list(registry["tools"])
    lo, hi = cfg["listed"]
    want = min(len(names), max(len(set(called)), int(rng.integers(lo, hi + 1))))
    others = [n for n in names if n not in called]
    extra = [others[int(i)] for i in rng.permutation(len(others))[: max(0, want - len(set(called)))]]
    listed = [*dict.fromkeys(called), *extra]
    listed = [listed[int(i)] for i in rng.permutation(len(listed))]
    lines = [json.dumps(tool_definition(n, registry["tools"][n]), ensure_ascii=False, separators=(",", ":"))
             for n in listed]
    return cfg["header"].strip() + "\n" + "\n".join(lines)


# ---------------------------------------------------------------- spoken commands
def command_keys(pool, registry: dict) -> list[str]:
    """The registry's commands that the pool has a spoken prompt of (label index; no row read)."""
    return [k for k in registry["commands"] if pool.label_count(f"{SLOT}={k}")]


def command_clip(pool, rng, key: str, speaker: str | None) -> tuple[dict, bool]:
    """A spoken command with word timings, in the episode's user voice when the pool has it in
    that voice (prompts come in several voice slots). Returns (clip, voice matched)."""
    rows = [r for r in pool.with_label(f"{SLOT}={key}") if r.get("words")]
    if not rows:
        raise PlanError(f"pool {pool.name!r} has no spoken command {key!r} with word timings")
    same = [r for r in rows if speaker and r.get("speaker") == speaker]
    return (pick(rng, same), True) if same else (pick(rng, rows), False)


def room_facts(rir: dict) -> dict:
    """What a room impulse response row says about its room (DNS: t60_s, c50_db, source,
    room, real), for the segment's attrs beside the response's id (attrs.rir, which the
    renderer writes); {} for a corpus that says nothing."""
    try:
        attrs = json.loads(rir.get("attrs") or "{}")
    except (TypeError, json.JSONDecodeError):
        attrs = {}
    keep = ("source", "room", "t60_s", "c50_db", "real")
    return {k: attrs[k] for k in keep if isinstance(attrs, dict) and k in attrs}


def benign_event(ctx: PlanContext, cfg: dict) -> dict | None:
    """An unrelated everyday sound (a clip with a benign label, no never label, a measured
    active span), or None when the pool has none."""
    events = ctx.pools.get("events")
    if events is None:
        return None
    benign, never = set(cfg["benign"]), set(cfg["never"])
    rows = np.unique(np.concatenate([events.with_label(lab).indices for lab in benign] or [np.zeros(0, np.int64)]))
    for i in ctx.rng.permutation(rows):  # random order: reads a few rows, not the whole split
        r = events.row(int(i))
        if not never & set(r["labels"]) and 0 <= r["active_start_s"] < r["active_end_s"] <= r["duration_s"] \
                and r["active_end_s"] - r["active_start_s"] <= cfg["max_event_s"]:
            return r
    return None


# ---------------------------------------------------------------- planning
def plan_commands(ctx: PlanContext, cfg: dict, *, noisy: bool) -> EpisodePlan:
    """1-4 spoken commands, one user voice where the pool allows, each answered after its last
    word by a respond turn: text = a short confirmation, tool_call = the call as JSON. A command
    may stop mid-sentence (two segments of one clip with a pause, a stay_silent turn in it: a
    model that calls a tool on half a command would act on the wrong thing).

    Not ``noisy`` (agent_tool_call): over a quiet bed, with unrelated everyday sounds between
    commands at times, each with a stay_silent turn. ``noisy`` (agent_noisy_command): over a
    loud noise bed, every command at a signal-to-noise ratio drawn in ``cfg["snr_db"]`` (its
    target asked of the renderer, which sets the command's level over the noise under it) and
    in one room (a response of the rir pool); no other sounds, so the noise is all that lies
    under a command."""
    rng, registry, tables = ctx.rng, ctx.tables["tools"], ctx.tables
    pool = ctx.pools["commands"]
    keys = command_keys(pool, registry)
    if not keys:
        raise PlanError(f"pool {pool.name!r} has no spoken command of tools/commands.yaml "
                        f"(labels '{SLOT}=<key>', manifests/spoken_prompts/agent_commands.yaml)")
    lo, hi = cfg["commands"]
    n = min(len(keys), int(rng.integers(lo, hi + 1)))
    chosen = [keys[int(i)] for i in rng.choice(len(keys), size=n, replace=False)]

    room, snr0 = None, None
    if noisy:
        snr0 = float(rng.uniform(*cfg["snr_db"]))
        room = ctx.pools["rir"].choice(rng)
        bed = background_bed(ctx.pools["noise"].choice(rng), gain_db=round(-snr0, 2))  # speech stays near 0 dB
    else:
        bed = background_bed(ctx.pools["noise"].choice(rng), float(rng.uniform(*cfg["bed_gain_db"])))
    segments: list[SegmentPlan] = [bed]
    turns: list[TurnPlan] = []
    pause = cfg["pause"]
    speaker: str | None = None
    t = float(rng.uniform(*cfg["lead_s"]))
    n_events = 0
    for k, key in enumerate(chosen):
        event_cfg = cfg.get("event")
        if event_cfg and n_events < event_cfg["max_per_episode"] and rng.random() < event_cfg["probability"]:
            clip = benign_event(ctx, event_cfg)
            if clip is not None:
                t = _event(ctx, event_cfg, clip, t, segments, turns)
                n_events += 1
        clip, matched = command_clip(pool, rng, key, speaker)
        speaker = speaker or clip.get("speaker")
        call = tool_call(registry, key)
        cmd = registry["commands"][key]
        attrs = {"command": key, "tool": call["name"], "voice_matched": matched or k == 0}
        if noisy:
            lo_db, hi_db = cfg["snr_db"]
            jitter = float(rng.uniform(-cfg["snr_jitter_db"], cfg["snr_jitter_db"]))
            snr = round(float(np.clip(snr0 + jitter, lo_db, hi_db)), 2)
            attrs.update({"target_snr_db": snr, "room": room_facts(room)})
        cut = (split_at_word(clip, rng, int(pause["min_words_each_side"]), set(pause["after_words"]))
               if rng.random() < pause["probability"] else None)
        if cut is None:
            parts = [SegmentPlan(clip=clip, start_s=t, kind="speech", role="user", attrs=dict(attrs))]
        else:
            gap = round(float(rng.uniform(*pause["pause_s"])), 3)
            head = SegmentPlan(clip=clip, start_s=t, kind="speech", role="user", clip_dur_s=cut,
                               text=part_text(clip, 0.0, cut),
                               attrs={**attrs, "part": 1, "parts": 2, "pause_after_s": gap})
            tail = SegmentPlan(clip=clip, start_s=t + cut + gap, kind="speech", role="user", clip_start_s=cut,
                               text=part_text(clip, cut, clip["duration_s"]), attrs={**attrs, "part": 2, "parts": 2})
            parts = [head, tail]
            # the user stopped mid-command: a naive model would call a tool on the fragment here
            wait = min(float(rng.uniform(*pause["silent_after_s"])), gap - 0.2)
            turns.append(TurnPlan(trigger_s=head.audible_end_s() + wait, kind="stay_silent", evidence=[head]))
        if noisy:
            for seg in parts:
                seg.snr_db, seg.rir = attrs["target_snr_db"], room
        segments += parts
        templates = tables["confirmations"]["templates"][cmd["confirm"]]
        trigger = parts[-1].audible_end_s() + float(rng.uniform(*cfg["reply_delay_s"]))
        turns.append(TurnPlan(trigger_s=trigger, kind="respond", text=fill(pick(rng, templates), **cmd["say"]),
                              tool_call=call_json(call), evidence=parts))
        # the next item starts after this command's audio and at least two chunks after its reply
        t = max(clip_end(parts[-1]) + float(rng.uniform(*cfg["gap_s"])), trigger + 0.8)
    event_cfg = cfg.get("event")
    if event_cfg and n_events < event_cfg["max_per_episode"] and rng.random() < event_cfg["probability"]:
        clip = benign_event(ctx, event_cfg)  # after the last command: a sound that needs no reply either
        if clip is not None:
            t = _event(ctx, event_cfg, clip, t, segments, turns)
    end = max(clip_end(s) for s in segments[1:]) + float(rng.uniform(*cfg["tail_s"]))
    speech = [s.clip for s in segments if s.kind == "speech"]
    called = [json.loads(tn.tool_call)["name"] for tn in turns if tn.tool_call]
    system_prompt = pick(rng, tables["instructions"]["system_prompts"]) + "\n\n" + \
        tools_block(rng, registry, called, tables["episodes"]["tools_block"])
    return EpisodePlan(segments=segments, turns=turns, language="en", system_prompt=system_prompt,
                       min_duration_s=max(end, t), text_writer=f"template-table:{ctx.subtask}",
                       tts=",".join(sorted({c["speaker"] for c in speech if c.get("speaker")})),
                       aligner=aligners(speech))


def _event(ctx: PlanContext, cfg: dict, clip: dict, t: float, segments: list, turns: list) -> float:
    """An unrelated sound at ``t`` (its active span and a little around it) with a stay_silent
    turn just after its active span (where a naive agent would act on it, e.g. turn the music
    down); returns when the next item may start."""
    rng = ctx.rng
    pad0, pad1 = cfg["pad_s"]
    cut0 = max(0.0, clip["active_start_s"] - pad0)
    cut1 = min(clip["duration_s"], clip["active_end_s"] + pad1)
    heard = sorted(set(cfg["benign"]) & set(clip["labels"]))
    seg = SegmentPlan(clip=clip, start_s=t, kind="music" if "Music" in clip["labels"] else "sound", role="environment",
                      gain_db=float(rng.uniform(*cfg["gain_db"])), clip_start_s=cut0, clip_dur_s=cut1 - cut0,
                      attrs={"unrelated": True, "benign_labels": heard})
    segments.append(seg)
    trigger = seg.audible_end_s() + float(rng.uniform(*cfg["silent_after_s"]))
    turns.append(TurnPlan(trigger_s=trigger, kind="stay_silent", evidence=[seg]))
    return max(clip_end(seg) + float(rng.uniform(*cfg["gap_s"])), trigger + 0.8)
