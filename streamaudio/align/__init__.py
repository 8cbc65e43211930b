"""Forced alignment: an aligner interface, pocketsphinx and CTC backends, and the alignment stage."""
