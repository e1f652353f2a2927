"""Real-size towers through the hf-llava export: ablate's features vs the exported HF tower's.

The export tests use tiny towers; this builds the real architectures of ``conf/vision`` (random init, the exact
configs of the weights they stand for: open_clip ViT-L/14 @ 336 px, SigLIP SO400M/14 @ 384 px), converts
each with ``ablate.export.towers.convert_tower`` and prints the largest difference of the patch features on a
random image (goal: float noise, < 1e-4), the HF tower's shape, and the wall time.  About 40 s and 3.5 GB per
tower on 2 CPU cores.

    python bench/export_towers.py [vision ids...]
"""

from __future__ import annotations

import sys
import time

import torch
from transformers import AutoModel

from ablate.design import compose
from ablate.export.towers import convert_tower
from ablate.models.vision import build_vision


def main(vision_ids: list[str]) -> None:
    torch.set_num_threads(2)
    for vid in vision_ids:
        start = time.perf_counter()
        cfg = compose(["llm=tiny-llama", f"vision={vid}"])
        b = cfg.vision.backbones[0]
        torch.manual_seed(0)
        vision = build_vision(cfg.vision, load_weights=False).eval()
        tower = convert_tower(next(iter(vision.branches.values())), b, vid)
        hf = AutoModel.from_config(tower.config).eval()
        missing, unexpected = hf.load_state_dict(tower.state, strict=False)
        assert not unexpected and all(k.startswith("post_layernorm") for k in missing), (missing, unexpected)
        x = torch.randn(1, 3, b.image_size, b.image_size)
        with torch.no_grad():
            ours = vision(x)
            theirs = hf(pixel_values=x, output_hidden_states=True).hidden_states[-1][:, tower.num_prefix_tokens:]
        c = tower.config
        print(f"{vid}: {type(hf).__name__} {c.num_hidden_layers} blocks x {c.hidden_size} (mlp {c.intermediate_size}, "
              f"{c.hidden_act}), features {tuple(ours.shape)}: max |ablate - hf| = {(ours - theirs).abs().max():.2e} "
              f"(|features| up to {ours.abs().max():.1f}); {time.perf_counter() - start:.0f} s  [goal < 1e-4]")
        del vision, hf, tower


if __name__ == "__main__":
    main(sys.argv[1:] or ["clip-vit-l-336", "siglip-so400m-384"])
