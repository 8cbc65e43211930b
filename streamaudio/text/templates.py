"""Answer templates: the sentences a recipe fills in with what was heard ("You first asked me:
"{request}"", "That sounded like {sound}."), one list per kind of answer.

    AnswerTemplates("chat/history_review.yaml", n=3)

The YAML::

    templates:                      # key -> templates; every template of a key names the same placeholders
      first_request: ["You first asked me: \\"{request}\\"", ...]
    about:                          # optional: what each key's answer says (the LLM prompt uses it)
      first_request: "reminds the user of the first thing they asked"
    number_words: [...]             # any other top-level key passes through unchanged

The planner reads ``ctx.tables[name]["templates"][key]`` (a list of str) and fills a template
with ``str.format(**values)``.

Offline the YAML is used as it is (writer "table"). With an LLM, one request per key (stage
``answer_templates``, prompt manifests/chat/answer_templates_prompt.yaml, or the table's own
``prompt:``) asks for ``n`` paraphrases that keep exactly the key's placeholders. Every answer
is checked (the same placeholder set, plain ``{name}`` fields only, ``str.format`` works with
dummy values and leaves no brace, a length limit, no repeat of a template already there), and
the paraphrases that pass are **appended** to the key's hand-written templates: the offline
ones are reviewed text that always fits, the model's add variety. A key with no usable
paraphrase keeps its offline list and is counted in the ResolvedTable's report and note; a key
whose request never got an answer (rate limits, timeouts: the endpoint failed) makes the note
start with "offline table (LLM failed", which the build reports as an endpoint fallback.
"""
from __future__ import annotations

import string

from .llm import LLMError
from .tables import ResolvedTable, TableEnv, TableProvider, load_yaml, table_path

PROMPT = "chat/answer_templates_prompt.yaml"
STAGE = "answer_templates"
MIN_CHARS, MAX_CHARS = 8, 300


def placeholders(template: str) -> set[str]:
    """The names of a template's fields; ValueError when it is not a plain ``{name}`` template
    (positional or attribute fields, conversions, format specs, stray braces)."""
    names = set()
    for _, field, spec, conv in string.Formatter().parse(template):
        if field is None:
            continue
        if not field.isidentifier() or spec or conv:
            raise ValueError(f"field {{{field}{'!' + conv if conv else ''}{':' + spec if spec else ''}}} "
                             "is not a plain {name}")
        names.add(field)
    return names


def template_problem(template, want: set[str], seen: set[str]) -> str:
    """Why ``template`` cannot be a template of a key whose placeholders are ``want`` ("" if it can);
    ``seen``: the key's templates so far, lower-cased, for repeats."""
    if not isinstance(template, str):
        return f"not text ({type(template).__name__})"
    t = " ".join(template.split())
    if not MIN_CHARS <= len(t) <= MAX_CHARS:
        return f"{len(t)} characters, not {MIN_CHARS}-{MAX_CHARS}"
    try:
        got = placeholders(t)
        filled = t.format(**{k: "x" for k in got})
    except (ValueError, IndexError, KeyError) as exc:
        return f"not a format template ({exc})"
    if got != want:
        return f"placeholders {sorted(got)} instead of {sorted(want)}"
    if "{" in filled or "}" in filled:
        return "a literal brace"
    if t.lower() in seen:
        return "a repeat"
    return ""


class AnswerTemplates(TableProvider):
    """``templates: {key: [template, ...]}`` (other top-level keys pass through). With an LLM,
    up to ``n`` checked paraphrases per key are appended to the key's templates."""
    writes_text = True

    def __init__(self, path: str, n: int = 3):
        self.path, self.n = path, n

    def __repr__(self) -> str:
        return f"AnswerTemplates({self.path!r}, n={self.n})"

    def files(self, folder):
        return [table_path(self.path, folder), table_path(PROMPT, folder)]

    def load(self, env: TableEnv) -> tuple[dict, dict[str, set[str]]]:
        """The table and each key's placeholder set; ValueError for a table that breaks its own rules."""
        path = table_path(self.path, env.folder)
        table = load_yaml(path)
        if not isinstance(table, dict) or not isinstance(table.get("templates"), dict) or not table["templates"]:
            raise ValueError(f"{path}: expected a mapping with templates: {{key: [template, ...]}}")
        want = {}
        for key, items in table["templates"].items():
            if not isinstance(items, list) or not items:
                raise ValueError(f"{path}: templates.{key} must be a non-empty list")
            try:
                want[key] = placeholders(items[0])
            except ValueError as exc:
                raise ValueError(f"{path}: templates.{key}[0]: {exc}") from None
            seen: set[str] = set()
            for i, t in enumerate(items):
                why = template_problem(t, want[key], seen)
                if why:
                    raise ValueError(f"{path}: templates.{key}[{i}]: {why}")
                seen.add(" ".join(t.split()).lower())
            table["templates"][key] = [" ".join(t.split()) for t in items]
        return table, want

    def _requests(self, env: TableEnv, table: dict, want: dict) -> list[tuple[list[dict], dict]]:
        p = table.get("prompt") or load_yaml(table_path(PROMPT, env.folder))
        about = table.get("about") or {}
        schema = {"type": "object", "additionalProperties": False, "required": ["templates"],
                  "properties": {"templates": {"type": "array", "minItems": self.n, "maxItems": self.n, "items": {
                      "type": "string", "minLength": MIN_CHARS, "maxLength": MAX_CHARS}}}}
        reqs = []
        for key, items in table["templates"].items():
            user = p["user"].format(subtask=env.subtask, about=about.get(key) or key.replace("_", " "), n=self.n,
                                    placeholders=", ".join(f"{{{k}}}" for k in sorted(want[key])) or "(none)",
                                    examples="\n".join(f"- {t}" for t in items[:5]))
            reqs.append(([{"role": "system", "content": p["system"]}, {"role": "user", "content": user}], schema))
        return reqs

    def resolve(self, env: TableEnv) -> ResolvedTable:
        table, want = self.load(env)
        if env.llm is None:
            return ResolvedTable(table, writer="table", note="offline table")
        keys = list(table["templates"])
        results = env.llm.map_json(STAGE, self._requests(env, table, want))
        added, rejected, offline, failed = {}, 0, {}, {}
        for key, res in zip(keys, results):
            if isinstance(res, LLMError):
                (failed if res.transient else offline)[key] = str(res)
                continue
            mine = table["templates"][key]
            seen = {t.lower() for t in mine}
            new = []
            for t in res["templates"]:
                if template_problem(t, want[key], seen):
                    rejected += 1
                    continue
                t = " ".join(t.split())
                seen.add(t.lower())
                new.append(t)
            if new:
                mine += new
                added[key] = len(new)
            else:
                offline[key] = "no usable paraphrase"
        tag = env.llm.config.tag
        writer = tag if added else "table"
        report = {"keys": len(keys), "llm_keys": sorted(added), "templates_added": sum(added.values()),
                  "templates_rejected": rejected, "offline_keys": {**offline, **failed}}
        summary = (f"{tag}: {sum(added.values())} template(s) added for {len(added)} of {len(keys)} key(s), "
                   f"{rejected} rejected; {len(offline) + len(failed)} key(s) kept offline")
        if failed:
            first = next(iter(failed))
            note = f"offline table (LLM failed: {len(failed)} key(s), first {first!r}: {failed[first]}); {summary}"
        else:
            note = summary + (f" ({', '.join(sorted(offline))})" if offline else "")
        return ResolvedTable(table, writer=writer, note=note, report=report)


def fill(template: str, **values) -> str:
    """A template with its placeholders filled (spaces tidied)."""
    return " ".join(template.format(**values).split())


__all__ = ["AnswerTemplates", "fill", "placeholders", "template_problem"]
