"""Evaluation: the Prismatic benchmarks read from their real on-disk formats, scored per example.

``ablate.eval.benchmarks`` holds one module per benchmark (loading, prompts, per-example scoring,
aggregation) behind a registry of string IDs; ``ablate.eval.scoring`` holds the answer normalizers and
scorers that reproduce the reference harnesses; ``ablate.eval.runner`` runs a model over benchmarks and
writes the per-example records that paired significance tests join on.
"""
