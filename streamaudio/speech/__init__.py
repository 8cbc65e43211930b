"""Speech: spoken-form rewriting, TTS backends (espeak-ng, OpenAI-compatible), the ASR check, and their source stages."""
