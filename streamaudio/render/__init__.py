"""Rendering (a plan -> one 16 kHz stream, with measured SNRs) and labelling (turns ->
chunks, and the contract's rules)."""
