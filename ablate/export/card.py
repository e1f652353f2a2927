"""The model card (README.md) of an exported design point: where it came from and how it scored.

Why it exists: an exported folder leaves the study behind, so the card carries what is needed to cite or
compare it: the design point's axis levels, run key, design key, seed and studies (``point.json``), the
benchmark scores with their example counts (``results.json``), the benchmark fingerprints when the run
recorded them (``results.json`` ``fingerprints``, or ``fingerprints.json`` in the run directory), and how the
export maps the point onto Llava (tower, feature selection, projector, image processing, prompt format).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ablate import rundir


def _read_json(path: Path) -> dict[str, Any]:
    from ablate.export.towers import ExportError
    from ablate.jsonfiles import read_object

    return read_object(path, ExportError)


def _fingerprints(run_dir: Path, results: dict[str, Any]) -> dict[str, Any]:
    found = results.get("fingerprints") or _read_json(run_dir / "fingerprints.json")
    return dict(found) if isinstance(found, dict) else {}


def model_card(run_dir: Path, cfg: Any, config: Any, *, dtype: str, logits_diff: float | None) -> str:
    point = _read_json(run_dir / rundir.POINT)
    results = _read_json(run_dir / rundir.RESULTS)
    axes = point.get("axes") or {}
    fingerprints = _fingerprints(run_dir, results)
    run_key = point.get("run_key", run_dir.name)
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: image-text-to-text",
        "tags: [llava, ablate]",
        "---",
        f"# {point.get('name') or run_key}",
        "",
        f"A design point of an ablate study, exported with `ablate export {run_dir} "
        "--format hf-llava`.  Load it with `LlavaForConditionalGeneration.from_pretrained` and "
        "`AutoProcessor.from_pretrained`; greedy generations equal ablate's, token for token.",
        "",
        "## Design point",
        "",
        f"- run key: `{run_key}`",
        f"- design key: `{point.get('design_key', '')}`",
        f"- seed: {point.get('seed', cfg.train.get('seed', ''))}",
        f"- studies: {', '.join(point.get('studies', [])) or cfg.get('study', '')}",
        "",
        "| axis | level |",
        "|---|---|",
    ]
    levels = axes or {"vision": cfg.vision.id, "image": cfg.image.id, "projector": cfg.projector.id,
                      "llm": cfg.llm.id, "recipe": cfg.recipe.id if "id" in cfg.recipe else ""}
    lines += [f"| {k} | {v} |" for k, v in sorted(levels.items())]
    lines += ["", "## Benchmark scores", ""]
    scores = results.get("scores") or {}
    if scores:
        lines += ["| benchmark | metric | value | n | fingerprint |", "|---|---|---|---|---|"]
        for bench in sorted(scores):
            for metric, value in sorted(scores[bench].items()):
                fp = fingerprints.get(bench, "")
                fp = fp if isinstance(fp, str) else json.dumps(fp, sort_keys=True)
                lines.append(f"| {bench} | {metric} | {value:.4f} | {results.get('n', {}).get(bench, '')} | {fp} |")
    else:
        lines.append("No results.json in the run directory (the run was not evaluated).")
    b = cfg.vision.backbones[0]
    lines += [
        "", "## How the export maps it", "",
        f"- vision tower: `{cfg.vision.id}` ({b.family} {b.arch}) as `{type(config.vision_config).__name__}` with "
        f"{config.vision_config.num_hidden_layers} transformer block(s) (ablate's `feature_layer={b.feature_layer}` and the "
        f"blocks before it), `hidden_act={config.vision_config.hidden_act}`, `vision_feature_layer=-1`, "
        f"`vision_feature_select_strategy={config.vision_feature_select_strategy}`",
        f"- projector: `{cfg.projector.id}` as `multi_modal_projector` (`projector_hidden_act="
        f"{config.projector_hidden_act}`{', linear_2 = identity' if config.projector_hidden_act == 'linear' else ''})",
        f"- LM: `{cfg.llm.id}` ({config.text_config.model_type}), `<image>` = token {config.image_token_index}, "
        f"{config.image_seq_length} image tokens right after BOS",
        f"- image processing: `{cfg.image.id}` ({cfg.vision.image_size} px) via `LlavaImageProcessor`",
        f"- prompt format: `{cfg.llm.prompt_format}` as the chat template",
        f"- weights dtype: {dtype}"
        + (f"; logits checked against ablate at export (max abs difference {logits_diff:.2e})"
           if logits_diff is not None else ""),
        "",
    ]
    return "\n".join(lines)
