"""Exporting trained design points to formats other tools load (``ablate export``).

Why it exists: a study's models are only useful inside ablate unless they leave in a format the field's
harnesses read.  One module per format; ``FORMATS`` maps the ``--format`` id to its ``module:function``
exporter, imported lazily (the CLI must not import torch to print its help).
"""

from __future__ import annotations

import argparse
import importlib

FORMATS: dict[str, str] = {
    "hf-llava": "ablate.export.hf_llava:cli_export",
}


def cli_export(args: argparse.Namespace) -> int:
    """``ablate export RUN --format F --out DIR``: dispatch to the format's exporter."""
    if args.format not in FORMATS:
        raise SystemExit(f"error: --format {args.format!r}: unknown; known: {', '.join(sorted(FORMATS))}")
    module, _, func = FORMATS[args.format].partition(":")
    return int(getattr(importlib.import_module(module), func)(args) or 0)
