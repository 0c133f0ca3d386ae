"""Evaluations (clean, PGD, audit, corruptions, ImageNet-A) and reports, above both trainers."""
