import numpy as np
import pytest

from streamaudio.speech.espeak import TTSError, Voice, synthesize
from streamaudio.speech.spoken import SpokenFormError, check_spoken, pick_voice, speak_row, to_spoken_form


def test_espeak_word_timings_are_ordered_and_cover_the_speech():
    s = synthesize("The quick brown fox jumps over the lazy dog.", Voice("en-us", 160, 50))
    assert [w for w, _, _ in s.words] == "The quick brown fox jumps over the lazy dog.".split()
    starts = [a for _, a, _ in s.words]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    dur = len(s.samples) / s.sample_rate
    for _, a, b in s.words:
        assert 0 <= a < b <= dur + 1e-9
    # the last word ends where the audio falls silent, not at the end of the buffer
    loud = np.nonzero(np.abs(s.samples) > 10 ** (-45 / 20))[0]
    assert abs(s.words[-1][2] - loud[-1] / s.sample_rate) < 0.03


def test_slower_rate_gives_later_word_starts():
    fast = synthesize("one two three four five", Voice("en-us", 220, 50))
    slow = synthesize("one two three four five", Voice("en-us", 110, 50))
    assert slow.words[-1][1] > fast.words[-1][1] * 1.4


def test_number_token_keeps_one_word_entry():
    s = synthesize("I have 42 apples", Voice())
    assert [w for w, _, _ in s.words] == ["I", "have", "42", "apples"]


def test_tts_errors():
    with pytest.raises(TTSError):
        synthesize("   ")
    with pytest.raises(TTSError, match="no voice"):
        synthesize("hello", Voice("xx-nonexistent"))


@pytest.mark.parametrize("text,expected", [
    ("What is **15%** of 240?", "What is fifteen percent of two hundred and forty?"),
    ("Open `ls -la` now", "Open ls -la now"),
    ("See https://example.com/x for more.", "See a link for more."),
    ("- first\n- second", "first second"),
    ("It costs $20 in 1999.", "It costs twenty dollars in nineteen ninety-nine."),
    ("[the docs](http://x.y) & more", "the docs and more"),
])
def test_spoken_form_rules(text, expected):
    assert to_spoken_form(text) == expected


def test_spoken_form_rejects():
    with pytest.raises(SpokenFormError, match="nothing speakable"):
        to_spoken_form("```\ncode only\n```")
    with pytest.raises(SpokenFormError, match="too long"):
        to_spoken_form("word " * 61, max_words=60)
    # other scripts are speakable; Chinese characters count as half a word each
    assert check_spoken("你好，今天天气怎么样？") == "你好，今天天气怎么样？"
    with pytest.raises(SpokenFormError, match="too long"):
        check_spoken("天" * 130, max_words=60)


def test_text_is_spoken_in_a_voice_of_its_language(tmp_path):
    from streamaudio.speech.espeak import TTSError
    from streamaudio.speech.tts import EspeakBackend, TTSConfig

    tts = EspeakBackend(TTSConfig())
    zh = speak_row({"id": "z", "text": "你好", "split_group": "g", "language": "zh-CN", "corpus": "c"}, tts, tmp_path, "你好")
    fr = speak_row({"id": "f", "text": "Bonjour à tous", "split_group": "g", "language": "fr", "corpus": "c"}, tts,
                   tmp_path, "Bonjour à tous")
    assert zh["speaker"].startswith("espeak-ng/cmn") and fr["speaker"].startswith("espeak-ng/fr")
    with pytest.raises(TTSError, match="no espeak-ng voice for language 'xx'"):
        speak_row({"id": "x", "text": "hi", "split_group": "g", "language": "xx", "corpus": "c"}, tts, tmp_path, "hi")

def test_speak_row_is_cached_by_content(tmp_path, monkeypatch):
    from streamaudio.speech import tts as backends

    calls = []
    real = backends.EspeakBackend.synthesize
    monkeypatch.setattr(backends.EspeakBackend, "synthesize",
                        lambda self, text, group, language="en": calls.append(text) or real(self, text, group, language))
    row = {"id": "x", "text": "How tall is **Mount Everest**?", "response": "About 8,849 metres.",
           "split_group": "g", "corpus": "ultrachat"}
    v = pick_voice([Voice("en-us"), Voice("en")], "g")
    a = speak_row(row, v, tmp_path)
    files = sorted(tmp_path.rglob("*.flac"))
    b = speak_row(row, v, tmp_path)
    # the second time nothing is synthesized: the audio and its word timings come from the cache
    assert calls == ["How tall is Mount Everest?"]
    assert a == b and sorted(tmp_path.rglob("*.flac")) == files and len(files) == 1
    speak_row({**row, "text": "How deep is the sea?"}, v, tmp_path)  # another text is another key
    assert len(calls) == 2 and len(list(tmp_path.rglob("*.flac"))) == 2
    assert a["text"] == "How tall is Mount Everest?" and a["kind"] == "speech" and a["sample_rate"] == 16000
    assert a["words"][-1]["text"] == "Everest?" and a["words"][-1]["end_s"] <= a["duration_s"]



def test_a_voice_slot_group_gets_that_voice():
    from streamaudio.speech.tts import pick_for_group

    voices = [Voice("en-us"), Voice("en"), Voice("en+f3")]
    assert [pick_for_group(voices, f"*prompts#voice={k}").name for k in range(4)] == ["en-us", "en", "en+f3", "en-us"]
    # any other group: by hash, stable
    assert pick_for_group(voices, "dialogue-1") == pick_for_group(voices, "dialogue-1")
    assert len({pick_for_group(voices, f"d{i}").name for i in range(30)}) == 3


def test_every_voice_in_the_table_exists():
    import yaml

    from streamaudio.resources import MANIFESTS_DIR
    from streamaudio.speech.espeak import Voice, synthesize

    raw = yaml.safe_load((MANIFESTS_DIR / "voices.yaml").read_text())
    for v in raw["espeak"] + [v for vs in raw["espeak_languages"].values() for v in vs]:
        assert synthesize("one", Voice(**v)).samples.size > 0, v
