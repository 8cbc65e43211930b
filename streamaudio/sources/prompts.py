"""Spoken prompts: the instructions and questions a user says to the assistant
("translate what I say into German", "tell me when you hear the doorbell"), as templates
that TTS speaks like any text corpus (a catalog source with ``spoken:``).

Layout: a folder of YAML files (the toolkit's own: ``manifests/spoken_prompts/``), each::

    language: en
    intents:
      translate_to:
        slot: language
        values: {de: German, zh-CN: Chinese}          # value -> the words said for it
        templates: ["Please translate what I say into {language}."]
      set_task:
        slot: task
        values: {transcribe: "", summarise: ""}
        templates: {transcribe: ["Just write down what I say."], summarise: [...]}

``templates`` is a list (each said for every value, ``{<slot>}`` filled with the value's
words) or a mapping value -> list.

Rows (kind ``text``): one per template, value and voice slot: ``text`` the filled template,
``labels`` = [intent, "<slot>=<value>"] (drawn with ``pool.with_label``), ``attrs``
{intent, slot, value, template, voice}. Each prompt is written ``voices`` times (option,
default 8: the English espeak-ng voices), with split group ``*prompts#voice=<k>``: the TTS
stage speaks slot k with voice k, so a recipe can pick a prompt in its episode's user voice
(same ``speaker``). Split groups starting with ``*`` are in every split: these are
instructions, not content, and every split needs them.

Rejects: a template that names a placeholder the intent lacks, an empty template, a
template for a value not in ``values``, an intent without templates
("prompts:<file>/<intent>[/<value>/<n>]"); a file that is not a YAML mapping with
``intents`` ("prompts:<file>").
"""
from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Iterator

import yaml

from .base import Adapter, LayoutError, Reject, bcp47, clip_row, register_adapter

DEFAULT_VOICES = 8


@register_adapter
class SpokenPrompts(Adapter):
    corpus = "prompts"
    kind = "text"
    license = "Apache-2.0 (StreamAudio templates)"
    version = "1"
    provides = frozenset({"text", "intent"})
    expected_layout = ("a folder of YAML files (e.g. manifests/spoken_prompts/), each {language, intents: "
                       "{<intent>: {slot, values: {value: words}, templates: [...] or {value: [...]}}}}")

    def _files(self, root: Path) -> list[Path]:
        files = [root] if root.is_file() and root.suffix in (".yaml", ".yml") else \
            sorted(p for p in root.glob("*.y*ml") if p.is_file()) if root.is_dir() else []
        if not files:
            raise LayoutError(f"prompts: no .yaml files in {root}. Expected layout: {self.expected_layout}")
        return files

    def check_layout(self, root: Path, options: dict) -> None:
        for path in self._files(root):
            try:
                doc = yaml.safe_load(path.read_text())
            except yaml.YAMLError:
                continue  # one bad file is that file's reject
            if isinstance(doc, dict) and "intents" in doc:
                return
        raise LayoutError(f"prompts: no YAML file in {root} has 'intents'. Expected layout: {self.expected_layout}")

    def listing_roots(self, root: Path, options: dict) -> list[Path]:
        return self._files(root)

    def units(self, root: Path, options: dict) -> list[str]:
        return [str(p) for p in self._files(root)]

    def scan_unit(self, root: Path, options: dict, unit: str) -> Iterator[dict | Reject]:
        path = Path(unit)
        name = path.stem
        voices = int(options.get("voices", DEFAULT_VOICES))
        try:
            doc = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            yield Reject(f"prompts:{name}", f"not YAML ({' '.join(str(exc).split())[:120]})")
            return
        if not isinstance(doc, dict) or not isinstance(doc.get("intents"), dict):
            yield Reject(f"prompts:{name}", "not a mapping with 'intents'")
            return
        language = bcp47(doc.get("language") or "en")
        for intent, spec in doc["intents"].items():
            item = f"prompts:{name}/{intent}"
            if not isinstance(spec, dict) or not spec.get("templates"):
                yield Reject(item, "intent without templates")
                continue
            slot = str(spec.get("slot") or "value")
            values = {str(k): ("" if v is None else str(v)) for k, v in (spec.get("values") or {"": ""}).items()}
            templates = spec["templates"]
            per_value = templates if isinstance(templates, dict) else {v: templates for v in values}
            for value, texts in per_value.items():
                value = str(value)
                for n, template in enumerate(texts or []):
                    tid = f"{item}/{value}/{n}"
                    text, why = _fill(template, slot, values.get(value), value in values)
                    if why:
                        yield Reject(tid, why)
                        continue
                    for k in range(voices):
                        yield clip_row(
                            id=f"{tid}#voice={k}", corpus=self.corpus, kind="text", language=language, text=text,
                            labels=[intent, f"{slot}={value}"], license=options.get("license") or self.license,
                            split_group=f"*prompts#voice={k}",
                            attrs=json.dumps({"intent": intent, "slot": slot, "value": value, "template": n,
                                              "voice": k}, ensure_ascii=False, sort_keys=True))


def _fill(template, slot: str, words: str | None, known: bool) -> tuple[str, str]:
    """(text, "") or ("", why)."""
    if not known:
        return "", f"template for a value not in the intent's values"
    if not isinstance(template, str) or not template.strip():
        return "", "empty template"
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    unknown = fields - {slot}
    if unknown:
        return "", f"template names {sorted(unknown)}, the intent's slot is {slot!r}"
    return " ".join(template.format(**{slot: words or ""}).split()), ""
