"""Table providers: the policy and text tables a recipe reads, resolved by the build.

A recipe declares its tables as typed providers::

    tables={"instructions": InstructionBank("instructions/asr_noisy.yaml"),
            "policy": PolicyTable("policy/proactive_household.yaml"),
            "scenarios": CuratedScenarios("curation/household_settings.yaml", pool="events")}

The builder calls ``resolve(env)`` on each, in declaration order (a provider may
read the tables resolved before it), and hands the values to the planner as
``ctx.tables``. Each provider works offline (the YAML as it is, or rules) and,
when the build has an LLM, writes its content with it; a call that fails for good
leaves the offline table in place and the build report says why.

Paths are relative to the recipe's own folder first (a user recipe ships its
tables next to its code), then to the toolkit's manifests/.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import yaml

from ..resources import MANIFESTS_DIR
from .llm import LLMClient, LLMError

N_INSTRUCTIONS = 20
N_REPLIES = 3


@dataclass
class TableEnv:
    """What a provider may use while resolving."""
    llm: LLMClient | None
    subtask: str
    ability: str
    description: str
    folder: Path | None  # the recipe's folder (tables next to the code)
    pools: dict[str, dict[str, Any]] = field(default_factory=dict)  # recipe pool -> split -> pa.Table of clips
    tables: dict[str, Any] = field(default_factory=dict)  # values resolved before this one
    seed: int = 0
    reject: Callable[[str, str, str], None] = lambda stage, item, reason: None
    cache_dir: Path | None = None  # the build's cache folder: providers that measure clips (ClipTempos) cache there


@dataclass
class ResolvedTable:
    value: Any
    writer: str  # what wrote the content: "table", "rules:...", "llm:<model>"
    note: str = ""  # for the build report, e.g. "offline table (LLM failed: ...)"
    report: dict = field(default_factory=dict)


class TableProvider:
    writes_text: bool = False  # its text reaches episodes: provenance.text_writer names who wrote it

    def resolve(self, env: TableEnv) -> ResolvedTable:
        raise NotImplementedError

    def files(self, folder: Path | None) -> list[Path]:
        """The files it reads (for fingerprints and listings)."""
        return []


def table_path(rel: str, folder: Path | None) -> Path:
    """``rel`` in the recipe's folder, else in the toolkit's manifests/."""
    cands = ([Path(folder) / rel] if folder else []) + [MANIFESTS_DIR / rel]
    for c in cands:
        if c.is_file():
            return c
    raise FileNotFoundError(f"recipe table {rel!r} not found; looked in {', '.join(str(c) for c in cands)}")


@lru_cache(maxsize=256)
def _read_yaml(path: str, mtime_ns: int) -> Any:
    # libyaml's parser where PyYAML has it: the same data for ~10x less CPU (a build's driver
    # reads every recipe's tables; in pure Python that is ~0.35 s of its start-up)
    return yaml.load(Path(path).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_yaml(path: Path) -> Any:
    return copy.deepcopy(_read_yaml(str(path), path.stat().st_mtime_ns))


class YamlTable(TableProvider):
    """A data table used as it is."""

    def __init__(self, path: str):
        self.path = path

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    def files(self, folder):
        return [table_path(self.path, folder)]

    def load(self, env: TableEnv) -> Any:
        return load_yaml(table_path(self.path, env.folder))

    def resolve(self, env: TableEnv) -> ResolvedTable:
        return ResolvedTable(self.load(env), writer="table", note="table")


def _prompts() -> dict:
    return load_yaml(MANIFESTS_DIR / "prompts" / "writers.yaml")


def _array_schema(key: str, n: int) -> dict:
    return {"type": "object", "additionalProperties": False, "required": [key],
            "properties": {key: {"type": "array", "minItems": n, "maxItems": n,
                                 "items": {"type": "string", "minLength": 8, "maxLength": 400}}}}


class InstructionBank(YamlTable):
    """``system_prompts: [...]`` for a sub-task; with an LLM, ``n`` new paraphrases in the
    style of the table's first examples."""
    writes_text = True

    def __init__(self, path: str, n: int = N_INSTRUCTIONS):
        super().__init__(path)
        self.n = n

    def resolve(self, env: TableEnv) -> ResolvedTable:
        table = self.load(env)
        if env.llm is None:
            return ResolvedTable(table, writer="table", note="offline table")
        p = table.get("prompt") or _prompts()["instructions"]
        examples = "\n".join(f"- {t}" for t in table["system_prompts"][:5] if t)
        user = p["user"].format(subtask=env.subtask, ability=env.ability,
                                description=" ".join((env.description or "").split()), examples=examples, n=self.n)
        try:
            res = env.llm.complete_json("instructions", [{"role": "system", "content": p["system"]},
                                                         {"role": "user", "content": user}],
                                        _array_schema("prompts", self.n), name="prompts")
        except LLMError as exc:
            return ResolvedTable(table, writer="table", note=f"offline table (LLM failed: {exc})")
        table["system_prompts"] = [" ".join(t.split()) for t in res["prompts"]]
        return ResolvedTable(table, writer=env.llm.config.tag, note=env.llm.config.tag)


class PolicyTable(YamlTable):
    """``labels: {label: {action: respond|ignore, emotion, replies: [...]}}``: what to do when a
    sound is heard. With an LLM, ``n_replies`` new replies per respond label."""
    writes_text = True

    def __init__(self, path: str, n_replies: int = N_REPLIES):
        super().__init__(path)
        self.n_replies = n_replies

    def resolve(self, env: TableEnv) -> ResolvedTable:
        table = self.load(env)
        if env.llm is None:
            return ResolvedTable(table, writer="table", note="offline table")
        p = table.get("prompt") or _prompts()["replies"]
        labels = [lab for lab, e in table["labels"].items() if e.get("action") == "respond"]
        reqs = []
        for label in labels:
            examples = "\n".join(f"- {r}" for r in table["labels"][label].get("replies", [])[:3])
            reqs.append(([{"role": "system", "content": p["system"]},
                          {"role": "user", "content": p["user"].format(label=label, examples=examples, n=self.n_replies)}],
                         _array_schema("replies", self.n_replies)))
        results = env.llm.map_json("replies", reqs)
        failed = [(lab, r) for lab, r in zip(labels, results) if isinstance(r, LLMError)]
        if failed:
            why = f"replies for {len(failed)} label(s) failed, first {failed[0][0]!r}: {failed[0][1]}"
            return ResolvedTable(table, writer="table", note=f"offline table (LLM failed: {why})")
        for label, res in zip(labels, results):
            table["labels"][label]["replies"] = [" ".join(r.split()) for r in res["replies"]]
        return ResolvedTable(table, writer=env.llm.config.tag, note=env.llm.config.tag)


def as_provider(spec) -> TableProvider:
    """A recipe may name a plain YAML path instead of a provider."""
    if isinstance(spec, TableProvider):
        return spec
    if isinstance(spec, str):
        return YamlTable(spec)
    raise TypeError(f"a recipe table must be a TableProvider or a path, not {type(spec).__name__}")
