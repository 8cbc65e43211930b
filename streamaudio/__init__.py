"""StreamAudio: streaming audio-interaction episodes from public corpora."""
__version__ = "0.2.0"
