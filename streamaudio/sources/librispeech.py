"""LibriSpeech: ``<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac`` with
one ``<speaker>-<chapter>.trans.txt`` per chapter (``<utt-id> TRANSCRIPT`` lines).
One work unit per chapter folder."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from .base import Adapter, LayoutError, ProbeError, Reject, clip_row, probe_audio, register_adapter

SUBSETS = ("dev-clean", "dev-other", "test-clean", "test-other", "train-clean-100",
           "train-clean-360", "train-other-500")


@register_adapter
class LibriSpeech(Adapter):
    corpus = "librispeech"
    kind = "speech"
    license = "CC-BY-4.0"
    provides = frozenset({"text", "speaker"})
    expected_layout = ("LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac plus "
                       "<speaker>-<chapter>.trans.txt, <subset> one of " + ", ".join(SUBSETS))

    def _base(self, root: Path) -> Path:
        return root / "LibriSpeech" if (root / "LibriSpeech").is_dir() else root

    def subsets(self, root: Path, options: dict) -> list[Path]:
        base = self._base(root)
        wanted = options.get("subsets")
        found = [base / s for s in SUBSETS if (base / s).is_dir()]
        if wanted:
            missing = [s for s in wanted if not (base / s).is_dir()]
            if missing:
                raise LayoutError(f"librispeech: subset(s) {missing} not found under {base}. "
                                  f"Expected layout: {self.expected_layout}")
            found = [base / s for s in wanted]
        return found

    def check_layout(self, root: Path, options: dict) -> None:
        subs = self.subsets(root, options)
        if not subs or not any(next(s.glob("*/*/*.trans.txt"), None) for s in subs):
            raise LayoutError(f"librispeech: no subset with transcripts under {root}. "
                              f"Expected layout: {self.expected_layout}")

    def listing_roots(self, root: Path, options: dict) -> list[Path]:
        return self.subsets(root, options)

    def units(self, root: Path, options: dict) -> list[str]:
        base = self._base(root)
        return [str(d.relative_to(base)) for s in self.subsets(root, options)
                for d in sorted(p for p in s.glob("*/*") if p.is_dir())]

    def scan_unit(self, root: Path, options: dict, unit: str) -> Iterator[dict | Reject]:
        d = self._base(root) / unit
        subset, speaker, chapter = Path(unit).parts
        yield from self._chapter(d, speaker, chapter, subset)

    def _chapter(self, d: Path, speaker: str, chapter: str, subset: str) -> Iterator[dict | Reject]:
        trans_path = d / f"{speaker}-{chapter}.trans.txt"
        texts: dict[str, str | None] = {}  # None: the line is not UTF-8
        if trans_path.exists():
            for raw in trans_path.read_bytes().splitlines():
                key, _, rest = raw.partition(b" ")
                try:
                    texts[key.decode("ascii")] = rest.decode("utf-8").strip()
                except UnicodeDecodeError:
                    texts[key.decode("ascii", "replace")] = None
        flacs = sorted(d.glob("*.flac"))
        folder = str(d.resolve())  # once per chapter, not per file
        for path in flacs:
            utt = path.stem
            cid = f"librispeech:{utt}"
            if utt not in texts:
                yield Reject(cid, f"no transcript line for {utt} in {trans_path.name}")
                continue
            text = texts[utt]
            if text is None:
                yield Reject(cid, f"transcript line in {trans_path.name} is not valid UTF-8")
                continue
            if not text:
                yield Reject(cid, "empty transcript")
                continue
            try:
                info = probe_audio(path)
            except ProbeError as exc:
                yield Reject(cid, str(exc))
                continue
            yield clip_row(
                id=cid, corpus=self.corpus, kind="speech", path=f"{folder}/{path.name}",
                duration_s=info.duration_s, sample_rate=info.sample_rate, language="en", text=text,
                speaker=speaker, license=self.license, split_group=f"librispeech:{speaker}",
                caption=subset,
            )
        have = {p.stem for p in flacs}
        for utt in sorted(set(texts) - have):
            yield Reject(f"librispeech:{utt}", "transcript line without an audio file")
