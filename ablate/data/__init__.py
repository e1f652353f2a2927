"""Data: image processing, LLaVA-format datasets and data mixes."""
