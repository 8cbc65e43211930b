"""Randomly initialised wav2vec2 CTC checkpoints written to a local folder.

Tests and speed benchmarks need a real model without downloading one: the
architecture (and so the cost) is the real one, only the weights are random.
Such a model's alignments are meaningless; its speed is not.
"""
from __future__ import annotations

import json
from pathlib import Path

LETTERS = list("abcdefghijklmnopqrstuvwxyz'")
SIZES = {
    # wav2vec2-base: 95M parameters
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 conv_dim=(512,) * 7, num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16),
    # a few hundred thousand parameters: for tests on CPU
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4),
}


def write_random_wav2vec2(out: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4}
    for c in LETTERS:
        vocab[c] = len(vocab)
    torch.manual_seed(seed)
    cfg = Wav2Vec2Config(vocab_size=len(vocab), pad_token_id=0, feat_extract_norm="layer", do_stable_layer_norm=True,
                         **SIZES[size])
    Wav2Vec2ForCTC(cfg).save_pretrained(str(out))
    (out / "vocab.json").write_text(json.dumps(vocab))
    (out / "preprocessor_config.json").write_text(json.dumps({
        "feature_extractor_type": "Wav2Vec2FeatureExtractor", "sampling_rate": 16000, "do_normalize": True,
        "return_attention_mask": True, "feature_size": 1, "padding_value": 0.0}))
    return out
