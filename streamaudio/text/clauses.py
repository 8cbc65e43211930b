"""Tables for streaming speech translation: clause alignments and translations, resolved
at build time over a recipe's speech pool (``env.pools[pool][split]``, Arrow clips).

``ClauseAlignment`` cuts each clip's sentence and its reference translation into aligned
clauses, ``[{source, target, last_word}]``, where ``last_word`` indexes the clip's ``words``
(word timings): a simultaneous translation reply for a clause is due when that word ends.
Offline (deterministic), the sentence is cut at its language's clause punctuation and the
translation at its own (manifests/translation/clauses.yaml); the cut is kept only when both
give the same number of clauses and every source clause ends on a word of ``words``.
With an LLM, one request per clip asks for the aligned clauses; the answer is kept only when
its source clauses are the sentence and its target clauses the reference translation (letters
and digits compared, case, spaces and punctuation aside) and every source clause ends on a
word; otherwise that clip falls back to the offline rule, counted in the report. Clause texts
are always re-cut from the row's own sentence and translation, so joined back together they
are exactly the reference. Clips without word timings get no clause split (their reply is
due at the sentence's end), and the table holds only clips cut into two or more clauses:
a clip absent from it is one clause, the whole sentence (this keeps the table small).

``Translations`` writes translations for rows that have none (AISHELL transcripts into
English), one LLM request per clip, checked (not empty, not the source again, no
source-script text left in a spaced target, length within bounds); offline there are none,
so such rows are not used. Rows the LLM could not translate are rejects (stage
``translate``).

Both values are dicts keyed by clip id, computed only for the rows a recipe can use
(language filters are applied on the Arrow columns before any row becomes Python).
"""
from __future__ import annotations

import math
import re
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc

from .llm import LLMError
from .tables import ResolvedTable, TableEnv, TableProvider, load_yaml, table_path

MARKS = "translation/clauses.yaml"
LANGUAGES = "translation/languages.yaml"
PROMPTS = "translation/prompts.yaml"
RULES_WRITER = "rules:clause-punctuation"
MAX_CLAUSES = 12
COLUMNS = ("id", "language", "text", "translation", "translation_language", "words")
# scripts written without spaces: what a spaced target language must not still contain
UNSPACED_SCRIPT = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")

CLAUSE_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["clauses"],
    "properties": {"clauses": {"type": "array", "minItems": 1, "maxItems": MAX_CLAUSES, "items": {
        "type": "object", "additionalProperties": False, "required": ["source", "target"],
        "properties": {"source": {"type": "string", "minLength": 1}, "target": {"type": "string", "minLength": 1}}}}}}
TRANSLATION_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["translation"],
    "properties": {"translation": {"type": "string", "minLength": 1, "maxLength": 2000}}}


# ---------------------------------------------------------------- languages and text
def primary(code) -> str:
    """A language's primary subtag, lower case: "zh-CN" -> "zh", "en_us" -> "en"."""
    return re.split(r"[-_]", str(code or "").strip(), maxsplit=1)[0].lower()


def language_rules(marks: dict, lang: str) -> dict:
    """The clause punctuation and joiner of a language (clauses.yaml), its default filled in."""
    return {**marks["default"], **(marks.get("languages") or {}).get(primary(lang), {})}


def join_clauses(texts: list[str], lang: str, marks: dict) -> str:
    """Clause texts back into one text, the way the language writes them."""
    return language_rules(marks, lang)["join"].join(t.strip() for t in texts if t.strip())


def language_name(names: dict, lang: str) -> str:
    return (names.get("names") or {}).get(primary(lang), lang)


def norm_chars(text: str) -> list[str]:
    """What two texts must share to be the same words: their letters and digits, lower case
    (spaces, punctuation and case aside). One item per character of ``text`` kept."""
    return [c.lower() for c in text if c.isalnum()]


def mark_bounds(text: str, rules: dict) -> list[int]:
    """Where the clause punctuation cuts ``text``: for each cut, how many letters/digits come
    before it; cuts before the first or after the last letter are dropped."""
    total = len(norm_chars(text))
    out, count = [], 0
    for i, ch in enumerate(text):
        if ch.isalnum():
            count += 1
        nxt = text[i + 1] if i + 1 < len(text) else " "
        cuts = ch in rules.get("marks", "") or (ch in rules.get("spaced", "") and nxt.isspace())
        if cuts and 0 < count < total and (not out or out[-1] != count):
            out.append(count)
    return out


def piece_bounds(pieces: list[str], text: str) -> tuple[list[int] | None, str]:
    """(cuts, "") when ``pieces`` in order are ``text`` (letters and digits compared), each
    with some; else (None, why)."""
    seqs = [norm_chars(p) for p in pieces]
    if not pieces or any(not s for s in seqs):
        return None, "a clause without words"
    if [c for s in seqs for c in s] != norm_chars(text):
        return None, "the clauses do not join up to the text"
    cuts, n = [], 0
    for s in seqs[:-1]:
        n += len(s)
        cuts.append(n)
    return cuts, ""


def recut(text: str, cuts: list[int]) -> list[str]:
    """``text`` cut after the given numbers of letters/digits; a cut takes the punctuation that
    follows it (a comma, a closing quote) with the clause it ends. Joined back, the pieces are
    ``text`` up to the spaces between them."""
    pieces, start, count, k = [], 0, 0, 0
    i = 0
    while i < len(text) and k < len(cuts):
        if text[i].isalnum():
            count += 1
            if count == cuts[k]:
                j = i + 1
                while j < len(text) and not text[j].isalnum() and not text[j].isspace():
                    j += 1
                pieces.append(text[start:j].strip())
                start, i, k = j, j, k + 1
                continue
        i += 1
    pieces.append(text[start:].strip())
    return pieces


def last_words(cuts: list[int], text: str, words: list[dict]) -> tuple[list[int] | None, str]:
    """The index in ``words`` of the last word of each clause (the clauses end after ``cuts``
    letters/digits, the last one at the text's end), or (None, why) when the words do not
    spell the text or a cut falls inside a word."""
    seq = [norm_chars(w["text"]) for w in words]
    if [c for s in seq for c in s] != norm_chars(text):
        return None, "the word timings do not spell the transcript"
    ends, n = {}, 0
    for k, s in enumerate(seq):
        if s:
            n += len(s)
            ends[n] = k
    out = []
    for b in [*cuts, n]:
        if b not in ends:
            return None, "a clause ends inside a word"
        out.append(ends[b])
    return out, ""


def aligned_clauses(row: dict, src_cuts: list[int], tgt_cuts: list[int]) -> tuple[list[dict] | None, str]:
    """Clauses of a row from cuts of its sentence and of its translation (as many each)."""
    if len(src_cuts) != len(tgt_cuts):
        return None, f"{len(src_cuts) + 1} source clause(s) but {len(tgt_cuts) + 1} target clause(s)"
    lw, why = last_words(src_cuts, row["text"], row.get("words") or [])
    if lw is None:
        return None, why
    src, tgt = recut(row["text"], src_cuts), recut(row["translation"], tgt_cuts)
    return [{"source": s, "target": t, "last_word": w} for s, t, w in zip(src, tgt, lw)], ""


def offline_clauses(row: dict, marks: dict) -> tuple[list[dict] | None, str]:
    """The punctuation rule: (clauses, "") when the sentence and its translation cut into
    the same number (2+) of clauses at their clause punctuation and every source clause ends
    on a word; else (None, why): the reply is then one, for the whole sentence."""
    src = mark_bounds(row["text"], language_rules(marks, row["language"]))
    tgt = mark_bounds(row["translation"], language_rules(marks, row["translation_language"]))
    if not src:
        return None, "no clause punctuation in the sentence"
    return aligned_clauses(row, src, tgt)


def llm_clauses(row: dict, answer: dict) -> tuple[list[dict] | None, str]:
    """Check an LLM's clauses against the row: (clauses, "") when they hold (one clause is a
    valid answer: the whole sentence), else (None, why)."""
    items = answer.get("clauses") or []
    src, why = piece_bounds([c["source"] for c in items], row["text"])
    if src is None:
        return None, f"source {why}"
    tgt, why = piece_bounds([c["target"] for c in items], row["translation"])
    if tgt is None:
        return None, f"target {why}"
    return aligned_clauses(row, src, tgt)


# ---------------------------------------------------------------- rows of a pool
def _primary_col(col):
    return pc.utf8_lower(pc.replace_substring_regex(pc.fill_null(col, ""), r"[-_].*$", ""))


def select_rows(table: pa.Table | None, source=None, target=None, with_words=False,
                translated: bool | None = True, columns=COLUMNS) -> list[dict]:
    """The rows of a clip table a provider can use, filtered on the Arrow columns: source
    language (primary subtags), translation language, word timings present, a translation
    present (True) or absent (False)."""
    if table is None or table.num_rows == 0 or not {"id", "language", "text"} <= set(table.column_names):
        return []
    names = set(table.column_names)
    text = pc.utf8_trim_whitespace(pc.fill_null(table["text"], ""))
    mask = pc.not_equal(text, "")
    if source:
        mask = pc.and_(mask, pc.is_in(_primary_col(table["language"]), value_set=pa.array(sorted(source))))
    if translated is not None:
        has = (pc.not_equal(pc.utf8_trim_whitespace(pc.fill_null(table["translation"], "")), "")
               if "translation" in names else pa.array([False] * table.num_rows))
        mask = pc.and_(mask, has if translated else pc.invert(has))
    if target:
        if "translation_language" not in names:
            return []
        mask = pc.and_(mask, pc.is_in(_primary_col(table["translation_language"]), value_set=pa.array(sorted(target))))
    if with_words:
        if "words" not in names:
            return []
        mask = pc.and_(mask, pc.greater(pc.fill_null(pc.list_value_length(table["words"]), 0), 0))
    kept = table.filter(mask)
    return kept.select([c for c in columns if c in names]).to_pylist()


def pool_rows(env: TableEnv, pool: str, **filters) -> list[dict]:
    """``select_rows`` over every split of a recipe pool, each clip once."""
    out, seen = [], set()
    for _, table in sorted((env.pools.get(pool) or {}).items()):
        for r in select_rows(table, **filters):
            if r["id"] not in seen:
                seen.add(r["id"])
                out.append(r)
    return out


def _codes(x) -> tuple[str, ...] | None:
    if x is None:
        return None
    return tuple(sorted({primary(c) for c in ([x] if isinstance(x, str) else x)}))


def _first(reasons: Counter) -> str:
    return "; ".join(f"{why} ({n})" for why, n in reasons.most_common(3))


# ---------------------------------------------------------------- providers
class ClauseAlignment(TableProvider):
    """``{clip id: [{source, target, last_word}, ...]}`` for the clips of ``pool`` with word
    timings and a translation (``source``/``target``: primary language subtags to keep, None
    for any), holding only clips cut into 2+ clauses. See the module docstring."""
    writes_text = True

    def __init__(self, pool: str = "speech", source=None, target=None, marks: str = MARKS,
                 languages: str = LANGUAGES, prompts: str = PROMPTS):
        self.pool, self.source, self.target = pool, _codes(source), _codes(target)
        self.marks, self.languages, self.prompts = marks, languages, prompts

    def __repr__(self) -> str:
        return f"ClauseAlignment(pool={self.pool!r}, source={self.source!r}, target={self.target!r})"

    def files(self, folder):
        return [table_path(p, folder) for p in (self.marks, self.languages, self.prompts)]

    def requests(self, rows: list[dict], env: TableEnv) -> list[tuple[list[dict], dict]]:
        p = load_yaml(table_path(self.prompts, env.folder))["clauses"]
        names = load_yaml(table_path(self.languages, env.folder))
        out = []
        for r in rows:
            user = p["user"].format(source_name=language_name(names, r["language"]),
                                    target_name=language_name(names, r["translation_language"]),
                                    source=r["text"].strip(), target=r["translation"].strip())
            out.append(([{"role": "system", "content": " ".join(p["system"].split())},
                         {"role": "user", "content": user}], CLAUSE_SCHEMA))
        return out

    def resolve(self, env: TableEnv) -> ResolvedTable:
        marks = load_yaml(table_path(self.marks, env.folder))
        rows = pool_rows(env, self.pool, source=self.source, target=self.target, with_words=True, translated=True)
        offline = [offline_clauses(r, marks) for r in rows]
        value: dict[str, list[dict]] = {}
        report = {"clips": len(rows), "split": 0, "one_clause": 0}
        writer, note = RULES_WRITER, ""
        if env.llm is not None and rows:
            results = env.llm.map_json("clauses", self.requests(rows, env))
            accepted, fell_back, no_answer = 0, Counter(), Counter()
            for k, (r, res) in enumerate(zip(rows, results)):
                if isinstance(res, LLMError):
                    (no_answer if res.transient else fell_back)[f"LLM failed: {str(res)[:120]}"] += 1
                    continue
                clauses, why = llm_clauses(r, res)
                if clauses is None:
                    fell_back[why] += 1
                    continue
                accepted += 1
                offline[k] = (clauses, "")
            report["llm"] = {"asked": len(rows), "accepted": accepted,
                             "fell_back": sum(fell_back.values()) + sum(no_answer.values()),
                             "no_answer": sum(no_answer.values()), "reasons": dict(fell_back + no_answer)}
            tag = env.llm.config.tag
            writer = tag if accepted else RULES_WRITER
            note = (f"{tag}: {accepted} of {len(rows)} clause alignments validated, "
                    f"{len(rows) - accepted} fell back to the punctuation rule"
                    + (f" ({_first(fell_back + no_answer)})" if fell_back or no_answer else ""))
            if no_answer:  # the endpoint did not answer: the build reports it as a fallback
                note = f"offline table (LLM failed: {sum(no_answer.values())} clause request(s) unanswered); {note}"
        for r, (clauses, _) in zip(rows, offline):
            if clauses and len(clauses) > 1:
                value[r["id"]] = clauses
        report["split"] = len(value)
        report["one_clause"] = len(rows) - len(value)
        if not note:
            note = f"{RULES_WRITER}: {len(value)} of {len(rows)} clips with word timings cut into clauses"
        return ResolvedTable(value, writer=writer, note=note, report=report)


class Translations(TableProvider):
    """``{clip id: translation}`` written by the LLM for the clips of ``pool`` in ``source``
    languages that have no translation; offline ``{}`` (such clips are not used). See the
    module docstring."""
    writes_text = True

    def __init__(self, pool: str, source=("zh",), target: str = "en", marks: str = MARKS,
                 languages: str = LANGUAGES, prompts: str = PROMPTS):
        self.pool, self.source, self.target = pool, _codes(source), target
        self.marks, self.languages, self.prompts = marks, languages, prompts

    def __repr__(self) -> str:
        return f"Translations(pool={self.pool!r}, source={self.source!r}, target={self.target!r})"

    def files(self, folder):
        return [table_path(p, folder) for p in (self.marks, self.languages, self.prompts)]

    def resolve(self, env: TableEnv) -> ResolvedTable:
        rows = pool_rows(env, self.pool, source=self.source, translated=False)
        if env.llm is None or not rows:
            return ResolvedTable({}, writer="none", report={"clips": len(rows), "translated": 0},
                                 note=f"offline: no translations; {len(rows)} clip(s) without one are not used")
        p = load_yaml(table_path(self.prompts, env.folder))["translate"]
        names = load_yaml(table_path(self.languages, env.folder))
        marks = load_yaml(table_path(self.marks, env.folder))
        reqs = []
        for r in rows:
            user = p["user"].format(source_name=language_name(names, r["language"]),
                                    target_name=language_name(names, self.target), text=r["text"].strip())
            reqs.append(([{"role": "system", "content": " ".join(p["system"].split())},
                          {"role": "user", "content": user}], TRANSLATION_SCHEMA))
        value, failed, no_answer = {}, Counter(), 0
        for r, res in zip(rows, env.llm.map_json("translate", reqs)):
            if isinstance(res, LLMError):
                why, no_answer = f"LLM failed: {res}", no_answer + bool(res.transient)
            else:
                text = " ".join(res["translation"].split())
                why = check_translation(text, r["text"], r["language"], self.target, marks, p["length_ratio"])
            if why:
                failed[why.split(":", 1)[0]] += 1
                env.reject("translate", r["id"], why)
                continue
            value[r["id"]] = text
        tag = env.llm.config.tag
        note = (f"{tag}: {len(value)} of {len(rows)} translations kept"
                + (f", {sum(failed.values())} rejected ({_first(failed)})" if failed else ""))
        if no_answer:
            note = f"offline table (LLM failed: {no_answer} translation request(s) unanswered); {note}"
        return ResolvedTable(value, writer=tag if value else "none", note=note,
                             report={"clips": len(rows), "translated": len(value), "rejected": dict(failed)})


def check_translation(text: str, source: str, source_lang: str, target_lang: str, marks: dict,
                      ratio: tuple[float, float]) -> str:
    """"" when ``text`` can stand as the translation of ``source``, else why not."""
    if not text.strip():
        return "empty translation"
    if norm_chars(text) == norm_chars(source):
        return "not translated: the translation repeats the source"
    src_spaced = language_rules(marks, source_lang)["join"] == " "
    tgt_spaced = language_rules(marks, target_lang)["join"] == " "
    if tgt_spaced and not src_spaced and UNSPACED_SCRIPT.search(text):
        return "not translated: source-script text left in the translation"

    def units(t: str, spaced: bool) -> int:
        return len([w for w in t.split() if norm_chars(w)]) if spaced else len(norm_chars(t))

    n_src, n_tgt = units(source, src_spaced), units(text, tgt_spaced)
    lo, hi = ratio
    if not max(1, math.ceil(lo * n_src)) <= n_tgt <= hi * n_src + 3:
        unit = "word(s)" if tgt_spaced else "character(s)"
        return f"length out of bounds: {n_tgt} {unit} for a source of {n_src}"
    return ""
