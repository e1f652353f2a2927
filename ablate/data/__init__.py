"""Data: image processing, LLaVA-format datasets, data mixes and the synthetic shapes world."""
