"""The dataset card (OUT/README.md): YAML front matter that `datasets` reads
(one config per sub-task, data files per split, features with a 16 kHz Audio
column) and a human summary of what was built from what."""
from __future__ import annotations

import yaml

from ..format import SPLITS, hf_features_data


def render_card(build: dict) -> str:
    feats = hf_features_data()["yaml_list"]
    configs, infos = [], []
    for st in sorted(build["subtasks"]):
        info = build["subtasks"][st]
        splits = [s for s in SPLITS if s in info["splits"]]
        configs.append({
            "config_name": st,
            "data_files": [{"split": s, "path": f"data/{st}/{s}-*.parquet"} for s in splits],
        })
        infos.append({
            "config_name": st, "features": feats,
            "splits": [{"name": s, "num_examples": info["splits"][s]["episodes"]} for s in splits],
        })
    front = {
        "license": "other",
        "task_categories": ["automatic-speech-recognition", "audio-classification", "text-generation"],
        "language": sorted({l for l in build.get("languages", []) if l}) or ["en"],
        "tags": ["streaming", "audio-interaction", "streamaudio"],
        "configs": configs,
        "dataset_info": infos,
    }
    lines = [
        "---", yaml.safe_dump(front, sort_keys=False, width=120).rstrip(), "---", "",
        f"# {build['catalog']['name']}", "",
        "Streaming audio-interaction episodes built with StreamAudio "
        f"{build['toolkit_version']} (episode format v{build['format_version']}). Each row is one 16 kHz "
        "stream cut into 400 ms chunks; `chunk_labels[k] = 1` means the model should respond after "
        "chunk k, and `turns` holds what to say and when.", "",
        "## Contents", "", "| sub-task | ability | split | episodes | hours |", "|---|---|---|---:|---:|",
    ]
    for st in sorted(build["subtasks"]):
        info = build["subtasks"][st]
        for s in SPLITS:
            if s in info["splits"]:
                v = info["splits"][s]
                lines.append(f"| {st} | {info['ability']} | {s} | {v['episodes']} | {v['hours']:.3f} |")
    lines += ["", "## Sources", "", "| source | corpus | seen | used | rejected | drawn into episodes | license |",
              "|---|---|---:|---:|---:|---:|---|"]
    for name, src in sorted(build["inputs"].items()):
        lines.append(f"| {name} | {src['corpus']} | {src['seen']} | {src['used']} | {src['rejected']} | "
                     f"{src['drawn']} | {src['license']} |")
    lines += [
        "", "Rejected inputs and episodes, each with its stage and reason, are in `rejects.parquet`; "
        "`build.json` has the full accounting.", "",
        "## Loading", "", "```python", "import datasets",
        f"ds = datasets.load_dataset(PATH, name={sorted(build['subtasks'])[0]!r})",
        "ds = ds.cast_column('audio', datasets.Audio(decode=False))  # FLAC bytes; decode with soundfile",
        "```", "",
    ]
    return "\n".join(lines)
