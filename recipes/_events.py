"""Helpers shared by sound_event_narration and audio_qa: naming a sound event by its AudioSet
labels (manifests/audio/narration.yaml), placing it in a stream, and the two table providers
whose text reaches their episodes:

- NarrationDescriptions: the narration table; with an LLM, short descriptions per label set of
  the events pool, each checked (one spoken sentence that contains the event's phrase), the
  templates where a label set got none;
- FactCheckedAnswers: AnswerTemplates whose paraphrases must also keep each key's facts (the yes
  or the no, before or after, no stray count or negation), the audio_qa answers.

Modules starting with ``_`` are not recipes."""
from __future__ import annotations

import re
from collections import Counter

from streamaudio.plan import SegmentPlan
from streamaudio.text.curation import suitable
from streamaudio.text.llm import LLMError
from streamaudio.text.tables import ResolvedTable, TableEnv, TableProvider, load_yaml, table_path
from streamaudio.text.templates import AnswerTemplates, placeholders

__all__ = ["FactCheckedAnswers", "NarrationDescriptions", "clip_end", "description_problem", "event_name",
           "event_segment", "fact_problem", "join_phrases", "label_set_key", "phrase_of", "sentence",
           "usable_event"]


# ---------------------------------------------------------------- naming events
def phrase_of(label: str, table: dict) -> str:
    """The phrase of a label: the table's, else the generic rule on the label's own name
    ("Mechanical fan" -> "a mechanical fan sound")."""
    if label in table["phrases"]:
        return table["phrases"][label]
    name = label.split(",")[0].strip().lower()
    return table["generic_phrase"].format(article="an" if name[:1] in "aeiou" else "a", name=name)


def event_name(labels: list[str], table: dict) -> tuple[str, str]:
    """(label, phrase) a clip is named by: its first label with a phrase that is not a parent
    class, else its first label with a phrase, else its first label (generic phrase)."""
    phrased = [lab for lab in labels if lab in table["phrases"]]
    specific = [lab for lab in phrased if lab not in set(table.get("generic_labels") or ())]
    label = (specific or phrased or list(labels))[0]
    return label, phrase_of(label, table)


def usable_event(clip: dict, table: dict) -> bool:
    """A clip that can be an event here: labelled, its event found and short enough to place,
    and nothing in it that belongs elsewhere (never_events: hazards, distress, speech)."""
    labels = clip.get("labels") or []
    return bool(labels) and suitable(clip) and not set(labels) & set(table["never_events"])


def label_set_key(labels: list[str]) -> str:
    """The key of a clip's label set in the descriptions table."""
    return "|".join(sorted(set(labels)))


def sentence(template: str, **values) -> str:
    """A template filled in, spaces tidied and its first letter capitalised (a template may start
    with a placeholder: "{phrase} was the first sound I heard.")."""
    text = " ".join(template.format(**values).split())
    return text[:1].upper() + text[1:]


def join_phrases(phrases: list[str]) -> str:
    """"a, b and c"."""
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def event_segment(clip: dict, start_s: float, gain_db: float, pad_s, attrs: dict) -> SegmentPlan:
    """A sound event cut to its active span and a little around it (``pad_s``: before, after)."""
    cut0 = max(0.0, clip["active_start_s"] - pad_s[0])
    cut1 = min(clip["duration_s"], clip["active_end_s"] + pad_s[1])
    return SegmentPlan(clip=clip, start_s=start_s, kind="music" if "Music" in clip["labels"] else "sound",
                       role="environment", gain_db=gain_db, clip_start_s=cut0, clip_dur_s=cut1 - cut0, attrs=attrs)


def clip_end(seg: SegmentPlan) -> float:
    """Episode time at which a segment's audio ends."""
    avail = seg.clip["duration_s"] - seg.clip_start_s
    return seg.start_s + (avail if seg.clip_dur_s is None else min(seg.clip_dur_s, avail))


# ---------------------------------------------------------------- narration descriptions
DESCRIPTION_CHARS = (8, 200)
NOT_IN_A_DESCRIPTION = re.compile(r"[{}\[\]:?\"\n]")


def description_problem(text, phrase: str, max_words: int, seen: set[str]) -> str:
    """Why ``text`` cannot describe an event named ``phrase`` ("" if it can): one short spoken
    sentence (a capital first, a period or an exclamation mark last, no second sentence, no
    question, no markup or label lists) that contains the phrase."""
    if not isinstance(text, str):
        return f"not text ({type(text).__name__})"
    t = " ".join(text.split())
    if not DESCRIPTION_CHARS[0] <= len(t) <= DESCRIPTION_CHARS[1]:
        return f"{len(t)} characters"
    if phrase.lower() not in t.lower():
        return "does not say the phrase"
    if not 3 <= len(t.split()) <= max_words:
        return f"{len(t.split())} words, not 3-{max_words}"
    if not t[0].isupper() or t[-1] not in ".!":
        return "not a sentence"
    if re.search(r"[.!]\s", t[:-1]):
        return "more than one sentence"
    if NOT_IN_A_DESCRIPTION.search(t):
        return "a question, markup or a list"
    if t.lower() in seen:
        return "a repeat"
    return ""


class NarrationDescriptions(TableProvider):
    """The narration table (phrases, templates, settings) plus ``labels`` (every label with a
    phrase that may be an event, as a policy in which every event gets a description: curated
    scenarios read it) and ``descriptions`` (label-set key -> descriptions). Offline no
    descriptions: the planner fills the templates. With an LLM, ``llm.n`` descriptions for each of
    the ``llm.max_label_sets`` most frequent label sets of the pool's usable clips, each checked
    by description_problem; a set whose answer fails or has no usable description keeps the
    templates (counted in the report and note)."""
    writes_text = True

    def __init__(self, path: str, pool: str = "events"):
        self.path, self.pool = path, pool

    def __repr__(self) -> str:
        return f"NarrationDescriptions({self.path!r}, pool={self.pool!r})"

    def files(self, folder):
        return [table_path(self.path, folder)]

    def load(self, env: TableEnv) -> dict:
        path = table_path(self.path, env.folder)
        table = load_yaml(path)
        for i, t in enumerate(table.get("templates") or []):
            if placeholders(t) != {"phrase"}:
                raise ValueError(f"{path}: templates[{i}] must name {{phrase}} and nothing else")
        if not table.get("templates"):
            raise ValueError(f"{path}: no templates")
        never = set(table["never_events"])
        table["labels"] = {lab: {"phrase": p, "action": "respond"} for lab, p in table["phrases"].items()
                           if lab not in never}
        table["descriptions"] = {}
        return table

    def label_sets(self, env: TableEnv, table: dict) -> list[tuple[str, list[str]]]:
        """(key, labels) of the label sets of the pool's usable clips, most frequent first."""
        count: Counter = Counter()
        labels_of: dict[str, list[str]] = {}
        for clips in (env.pools.get(self.pool) or {}).values():
            cols = clips.select(["labels", "active_start_s", "active_end_s"]).to_pylist()
            for r in cols:
                if usable_event(r, table):
                    key = label_set_key(r["labels"])
                    count[key] += 1
                    labels_of.setdefault(key, list(r["labels"]))
        ranked = sorted(count, key=lambda k: (-count[k], k))[: int(table["llm"]["max_label_sets"])]
        return [(k, labels_of[k]) for k in ranked]

    def resolve(self, env: TableEnv) -> ResolvedTable:
        table = self.load(env)
        if env.llm is None:
            return ResolvedTable(table, writer="table", note="offline table (template descriptions)")
        cfg = table["llm"]
        n, max_words = int(cfg["n"]), int(cfg["max_words"])
        sets = self.label_sets(env, table)
        schema = {"type": "object", "additionalProperties": False, "required": ["descriptions"],
                  "properties": {"descriptions": {"type": "array", "minItems": n, "maxItems": n, "items": {
                      "type": "string", "minLength": DESCRIPTION_CHARS[0], "maxLength": DESCRIPTION_CHARS[1]}}}}
        reqs = []
        for key, labels in sets:
            _, phrase = event_name(labels, table)
            examples = "\n".join("- " + t.format(phrase=phrase) for t in table["templates"][:4])
            user = cfg["user"].format(n=n, max_words=max_words, phrase=phrase, examples=examples,
                                      labels=", ".join(labels))
            reqs.append(([{"role": "system", "content": cfg["system"]}, {"role": "user", "content": user}], schema))
        results = env.llm.map_json("narration", reqs) if reqs else []
        kept = rejected = 0
        offline, failed = {}, {}
        for (key, labels), res in zip(sets, results):
            if isinstance(res, LLMError):
                (failed if res.transient else offline)[key] = str(res)
                continue
            _, phrase = event_name(labels, table)
            seen: set[str] = set()
            good = []
            for text in res["descriptions"]:
                if description_problem(text, phrase, max_words, seen):
                    rejected += 1
                    continue
                text = " ".join(text.split())
                seen.add(text.lower())
                good.append(text)
            if good:
                table["descriptions"][key] = good
                kept += len(good)
            else:
                offline[key] = "no usable description"
        tag = env.llm.config.tag
        writer = tag if table["descriptions"] else "table"
        report = {"label_sets": len(sets), "llm_label_sets": len(table["descriptions"]), "descriptions": kept,
                  "rejected": rejected, "template_label_sets": len(offline) + len(failed)}
        summary = (f"{tag}: {kept} description(s) for {len(table['descriptions'])} of {len(sets)} label set(s), "
                   f"{rejected} rejected; {len(offline) + len(failed)} label set(s) use the templates")
        if failed:
            first = next(iter(failed))
            note = (f"offline table (LLM failed: {len(failed)} label set(s), first {first!r}: {failed[first]}); "
                    f"{summary}")
        else:
            note = summary
        return ResolvedTable(table, writer=writer, note=note, report=report)


# ---------------------------------------------------------------- answers that keep their facts
def fact_problem(template: str, rule: dict) -> str:
    """Why a template breaks its key's facts rule ("" if it does not): its words with the
    placeholders taken out must match one ``require`` pattern (when there are any) and no
    ``forbid`` pattern."""
    text = re.sub(r"\{\w+\}", " ", template).lower().replace("’", "'")
    need = rule.get("require") or []
    if need and not any(re.search(p, text) for p in need):
        return f"says none of {need}"
    bad = [p for p in rule.get("forbid") or [] if re.search(p, text)]
    return f"says {bad[0]}" if bad else ""


class FactCheckedAnswers(AnswerTemplates):
    """AnswerTemplates whose every template must pass its key's rule in the table's ``facts``:
    a paraphrase that keeps the placeholders but turns a yes into a no, a before into an after,
    or adds a count of its own is dropped (counted in the report and note); the hand-written
    templates must pass too (a table that breaks its own rules is an error)."""

    def load(self, env: TableEnv):
        table, want = super().load(env)
        facts = table.get("facts") or {}
        for key, items in table["templates"].items():
            if key not in facts:
                raise ValueError(f"{self.path}: templates.{key} has no facts rule")
            for i, t in enumerate(items):
                why = fact_problem(t, facts[key])
                if why:
                    raise ValueError(f"{self.path}: templates.{key}[{i}] breaks its facts rule: {why}")
        return table, want

    def resolve(self, env: TableEnv) -> ResolvedTable:
        res = super().resolve(env)
        if env.llm is None:
            return res
        table = res.value
        own, _ = self.load(env)
        dropped: dict[str, int] = {}
        llm_keys = []
        for key, items in table["templates"].items():
            n0 = len(own["templates"][key])
            new = [t for t in items[n0:] if not fact_problem(t, table["facts"][key])]
            if len(new) < len(items) - n0:
                dropped[key] = len(items) - n0 - len(new)
            table["templates"][key] = items[:n0] + new
            if new:
                llm_keys.append(key)
        added = sum(len(items) - len(own["templates"][k]) for k, items in table["templates"].items())
        report = {**res.report, "llm_keys": sorted(llm_keys), "fact_rejected": dropped, "templates_added": added}
        writer = res.writer if llm_keys else "table"
        note = res.note + (f"; {sum(dropped.values())} paraphrase(s) dropped for changing the facts "
                           f"({', '.join(sorted(dropped))})" if dropped else "")
        return ResolvedTable(table, writer=writer, note=note, report=report)
