"""Attacks beside the paper's PGD: their threat model, APGD, Square, and the examples."""
