"""What the LLM writes before planning: instruction pools per sub-task and replies
for policy tables. Each writer returns a table of the same shape as the offline
one in manifests/, plus a ``writer`` key naming who wrote it; without an LLM, or
when the LLM fails for good, the offline table is used and the build says so."""
from __future__ import annotations

import copy

import yaml

from .format import MANIFESTS_DIR
from .llm import LLMClient, LLMError

N_INSTRUCTIONS = 20
N_REPLIES = 3


def _prompts() -> dict:
    return yaml.safe_load((MANIFESTS_DIR / "prompts" / "writers.yaml").read_text())


def _array_schema(key: str, n: int) -> dict:
    return {"type": "object", "additionalProperties": False, "required": [key],
            "properties": {key: {"type": "array", "minItems": n, "maxItems": n,
                                 "items": {"type": "string", "minLength": 8, "maxLength": 400}}}}


def write_instructions(llm: LLMClient, recipe, table: dict) -> tuple[dict, str]:
    p = _prompts()["instructions"]
    examples = "\n".join(f"- {t}" for t in table["system_prompts"][:5] if t)
    user = p["user"].format(subtask=recipe.subtask, ability=recipe.ability,
                            description=" ".join((recipe.description or "").split()), examples=examples,
                            n=N_INSTRUCTIONS)
    res = llm.complete_json(f"instructions", [{"role": "system", "content": p["system"]},
                                              {"role": "user", "content": user}],
                            _array_schema("prompts", N_INSTRUCTIONS), name="prompts")
    out = copy.deepcopy(table)
    out["system_prompts"] = [" ".join(t.split()) for t in res["prompts"]]
    out["writer"] = llm.config.tag
    return out, llm.config.tag


def write_replies(llm: LLMClient, recipe, table: dict) -> tuple[dict, str]:
    p = _prompts()["replies"]
    out = copy.deepcopy(table)
    labels = [l for l, e in table["labels"].items() if e.get("action") == "respond"]
    reqs = []
    for label in labels:
        examples = "\n".join(f"- {r}" for r in table["labels"][label].get("replies", [])[:3])
        reqs.append(([{"role": "system", "content": p["system"]},
                      {"role": "user", "content": p["user"].format(label=label, examples=examples, n=N_REPLIES)}],
                     _array_schema("replies", N_REPLIES)))
    results = llm.map_json("replies", reqs)
    failed = [(l, r) for l, r in zip(labels, results) if isinstance(r, LLMError)]
    if failed:
        raise LLMError(f"replies for {len(failed)} label(s) failed, first {failed[0][0]!r}: {failed[0][1]}")
    for label, res in zip(labels, results):
        out["labels"][label]["replies"] = [" ".join(r.split()) for r in res["replies"]]
    out["writer"] = llm.config.tag
    return out, llm.config.tag


# recipe table name -> writer; a recipe's tables without a writer are used as they are
WRITERS = {"instructions": write_instructions, "policy": write_replies}


def written_tables(llm: LLMClient | None, recipe) -> tuple[dict, dict]:
    """(table overrides for this recipe, what wrote each table) — overrides are empty offline."""
    overrides, report = {}, {}
    tables = recipe.load_tables()
    for name, table in tables.items():
        if name not in WRITERS:
            continue
        if llm is None:
            report[name] = "offline table"
            continue
        try:
            overrides[name], report[name] = WRITERS[name](llm, recipe, table)
        except LLMError as exc:
            report[name] = f"offline table (LLM failed: {exc})"
    return overrides, report
