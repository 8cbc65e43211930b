"""Utterance summaries: one short summary per utterance of a recipe's pool, for replies
such as instr_task_switch's "summarise what I say".

Offline, a summary is a rule over a table of words (``rule_summary``: the utterance's main
clause without its filler words). With an LLM, ``UtteranceSummaries`` asks for a summary of
every distinct utterance text of the pool (all splits, the table's languages, at least
``min_words`` words; at most ``max_items`` of them, the rest by rule), checks each answer
(``check_summary``: a few words, shorter than the utterance, grounded in its words) and
keeps the rule's summary for every answer that fails a check. Answers are cached by the LLM
client, so a rebuild asks nothing. An endpoint that does not answer (rate limits, timeouts)
leaves the whole table to the rule and says so in its note (the build reports it as a
fallback).

Value: ``{"rules": <the rules table>, "by_text": {normalised text: summary}}``; a planner
calls ``summary_of(text, value)``, which falls back to the rule for texts not in the table.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter

from .llm import LLMError
from .tables import ResolvedTable, TableEnv, TableProvider, load_yaml, table_path

WORD = re.compile(r"[0-9]+(?:[.,][0-9]+)*|[^\W\d_]+(?:['’][^\W\d_]+)*")
RULE_WRITER = "rules:summary-table"


def words_of(text: str) -> list[str]:
    """The words of a transcript as a listener counts them: runs of letters (with inner
    apostrophes) or of digits; punctuation is not a word."""
    return WORD.findall(text or "")


def normalise(text: str) -> str:
    return " ".join((text or "").split())


def rule_summary(text: str, rules: dict) -> str:
    """A short summary by rule: the utterance's main clause (the first clause that does not
    open with a subordinator such as "when" or "because"), without the table's filler words,
    at most ``max_words`` words and always fewer words than the utterance.

    "The bridge was closed for repairs, so we drove around the lake all winter." gives
    "Bridge closed for repairs."
    """
    if text.isupper():  # read-speech transcripts in capitals (LibriSpeech)
        text = text.lower()
    filler = {w.lower() for w in rules["filler_words"]}
    subord = {w.lower() for w in rules["subordinators"]}
    coord = {w.lower() for w in rules["coordinators"]}
    clauses: list[tuple[bool, list[str]]] = []  # (opens with a subordinator, words)
    current: list[str] = []
    opens_sub = False
    for raw in text.split():
        word = raw.strip("\"()[]“”‘’")
        bare = word.rstrip(".,;:!?").lower()
        if bare in subord or bare in coord:  # a new clause starts here
            if current:
                clauses.append((opens_sub, current))
            current, opens_sub = [], bare in subord
        if words_of(word):
            current.append(word.rstrip(".,;:!?"))
        if word[-1:] in tuple(",;:.!?") and current:
            clauses.append((opens_sub, current))
            current, opens_sub = [], False
    if current:
        clauses.append((opens_sub, current))
    main = next((c for sub, c in clauses if not sub and len(c) >= 2),
                max((c for _, c in clauses), key=len, default=[]))
    kept = [w for w in main if w.lower() not in filler | subord | coord][: int(rules["max_words"])]
    total = len(words_of(text))
    if len(kept) >= total:  # nothing was dropped: a summary is shorter than what it sums up
        kept = kept[: max(1, total - 2)]
    if not kept:
        kept = words_of(text)[:1]
    out = " ".join(kept)
    if not out.startswith("I "):
        out = out[:1].upper() + out[1:]
    return out + "."


def _stem(word: str) -> str:
    return word.lower()[:5]


def check_summary(summary: str, source: str, rules: dict) -> str:
    """'' when ``summary`` is usable for ``source``, else why not (the build report counts it)."""
    got, src = words_of(summary), words_of(source)
    filler = {w.lower() for w in rules["filler_words"]}
    if len(got) < 2:
        return "too short"
    if len(got) > int(rules["max_words"]):
        return f"longer than {rules['max_words']} words"
    if len(got) >= len(src):
        return "not shorter than the utterance"
    content = {_stem(w) for w in got if len(w) >= 3 and w.lower() not in filler}
    if not content & {_stem(w) for w in src}:
        return "shares no content word with the utterance"
    return ""


def summary_of(text: str, table: dict) -> str:
    """The summary of an utterance: the table's (LLM-written, checked), else the rule's."""
    return (table.get("by_text") or {}).get(normalise(text)) or rule_summary(text, table["rules"])


SCHEMA = {"type": "object", "additionalProperties": False, "required": ["summary"],
          "properties": {"summary": {"type": "string", "minLength": 3, "maxLength": 200}}}


class UtteranceSummaries(TableProvider):
    """Summaries of the utterances of pool ``pool`` (see the module doc). ``rules`` is a YAML
    table: max_words, min_words, languages, filler_words, subordinators, coordinators and the
    LLM prompt (system, user with {max_words} and {text})."""
    writes_text = True

    def __init__(self, rules: str, pool: str = "utterances", max_items: int = 5000):
        self.rules, self.pool, self.max_items = rules, pool, max_items

    def __repr__(self) -> str:
        return f"UtteranceSummaries({self.rules!r}, pool={self.pool!r}, max_items={self.max_items})"

    def files(self, folder):
        return [table_path(self.rules, folder)]

    def texts(self, env: TableEnv, rules: dict) -> list[str]:
        """Distinct utterance texts worth summarising, in a stable order (by hash, so a capped
        table takes an even sample of the pool rather than its first files)."""
        langs = tuple(rules.get("languages") or ())
        seen = set()
        for clips in (env.pools.get(self.pool) or {}).values():
            cols = [c for c in ("text", "language") if c in clips.column_names]
            for r in clips.select(cols).to_pylist():
                text = normalise(r.get("text"))
                lang = r.get("language") or ""
                if text and (not langs or lang.split("-")[0] in langs) and len(words_of(text)) >= int(rules["min_words"]):
                    seen.add(text)
        return sorted(seen, key=lambda t: hashlib.sha256(t.encode()).hexdigest())[: self.max_items]

    def resolve(self, env: TableEnv) -> ResolvedTable:
        rules = load_yaml(table_path(self.rules, env.folder))
        value = {"rules": rules, "by_text": {}}
        if env.llm is None:
            return ResolvedTable(value, writer=RULE_WRITER, note="offline rules")
        texts = self.texts(env, rules)
        if not texts:
            return ResolvedTable(value, writer=RULE_WRITER, note="offline rules (no utterance to summarise)")
        p = rules["prompt"]
        reqs = [([{"role": "system", "content": p["system"]},
                  {"role": "user", "content": p["user"].format(max_words=rules["max_words"], text=t)}], SCHEMA)
                for t in texts]
        results = env.llm.map_json("summaries", reqs)
        down = [r for r in results if isinstance(r, LLMError) and r.transient]
        if down:
            # the endpoint did not answer: the rule for every utterance (a partial table would
            # depend on which calls happened to fail), and the build reports the fallback
            return ResolvedTable(value, writer=RULE_WRITER,
                                 note=f"offline table (LLM failed: {len(down)} of {len(texts)} summaries, first: {down[0]})")
        reasons: Counter = Counter()
        for text, res in zip(texts, results):
            why = "no valid answer" if isinstance(res, LLMError) else check_summary(normalise(res["summary"]), text, rules)
            if why:
                reasons[why] += 1
            else:
                value["by_text"][text] = normalise(res["summary"])
        n_llm = len(value["by_text"])
        tag = env.llm.config.tag
        why = ", ".join(f"{k}: {v}" for k, v in reasons.most_common())
        note = f"{tag}: {n_llm} of {len(texts)} summaries from the LLM" + (f", the rest by rule ({why})" if why else "")
        return ResolvedTable(value, writer=tag if n_llm else RULE_WRITER, note=note,
                             report={"utterances": len(texts), "llm": n_llm, "rule": len(texts) - n_llm,
                                     "fallback_reasons": dict(reasons)})
