"""Does a tiny VLM learn to look at its image?  Colour-presence accuracy over training steps.

Why it exists: the demo study (issue 9) can only find image-processing effects if its tiny random-init models
answer questions from the image.  This measures the most basic such skill, "Is there a <colour> object in the
image?" (half yes, half no, colour visible or not), on scenes of the synthetic shapes world, through the real
model (``build_vlm``), data pipeline (LLaVA JSON -> ``build_dataset``) and loss.  It prints held-out accuracy
of the yes/no token every ``--every`` steps (chance 0.5).

    .venv/bin/python bench/grounding.py --steps 1200                      # llm=tiny-llama as shipped
    .venv/bin/python bench/grounding.py --steps 1200 --init-range 0.02    # HF's default initializer_range
    .venv/bin/python bench/grounding.py --steps 300 --batch 16 --binding  # POPE's questions, the demo's budget
    .venv/bin/python bench/grounding.py --steps 400 --batch 16 --max-objects 1 --size-factor 1.25
    .venv/bin/python bench/grounding.py --steps 400 --batch 16 --text-warmup 500 --oracle-vision  # "pretrained"
    .venv/bin/python bench/grounding.py --steps 400 --batch 16 --pretrained demo/pretrained-full  # the demo's start
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import torch


def presence_questions(scene: Any, rng: random.Random, k: int, binding: bool) -> list[tuple[str, str]]:
    """``k`` (question, "Yes"/"No") pairs about ``scene``: colour presence or, with ``binding``, colour + shape
    presence with negatives that share a colour or a shape with a present object (POPE's adversarial kind)."""
    from ablate.shapes.scene import COLORS, SHAPES

    if binding:
        present = sorted({f"{o.color} {o.shape}" for o in scene.objects})
        absent = [f"{c} {s}" for c in COLORS for s in SHAPES if f"{c} {s}" not in present
                  and any(c == o.color or s == o.shape for o in scene.objects)]
        subject = "a {}"
    else:
        present = sorted({o.color for o in scene.objects})
        absent = [c for c in COLORS if c not in present]
        subject = "a {} object"
    out = []
    for _ in range(k):
        yes = rng.random() < 0.5 or not absent
        out.append((f"Is there {subject.format(rng.choice(present if yes else absent))} in the image?",
                    "Yes" if yes else "No"))
    return out


def write_colour_presence(root: Path, n_images: int, seed: int = 0, *, turns: int = 2, binding: bool = False,
                          max_objects: int = 4, size_factor: float = 1.0, text_records: int = 0) -> None:
    """LLaVA chat JSON of presence questions over shapes-world scenes: per image two records of one question
    (``turns=2``, the default) or one record of ``turns`` questions (``presence.json``); and ``text_records``
    language-only records whose scene is described in words before the question (``text.json``)."""
    from ablate.shapes.scene import render, sample_scene, save

    rng = random.Random(seed)

    def scene() -> Any:
        return sample_scene(rng, rng.choice(("wide", "tall", "square")), rng.randint(1, max_objects),
                            small_prob=0.0 if size_factor > 1 else 0.3, size_factor=size_factor)

    records = []
    for i in range(n_images):
        sc = scene()
        name = f"{i:06d}.png"
        save(render(sc), root / "images" / name)
        qa = presence_questions(sc, rng, turns, binding)
        for k, chunk in enumerate([qa[:1], qa[1:]] if turns == 2 else [qa]):
            conv = []
            for j, (q, a) in enumerate(chunk):
                conv += [{"from": "human", "value": ("<image>\n" if j == 0 else "") + q}, {"from": "gpt", "value": a}]
            records.append({"id": f"{i}-{k}", "image": name, "conversations": conv})
    text = []
    for i in range(text_records):
        sc = scene()
        (q, a), = presence_questions(sc, rng, 1, binding)
        described = "Scene: " + ", ".join(o.name for o in sc.objects) + ".\n"
        text.append({"id": f"text-{i}", "conversations": [{"from": "human", "value": described + q},
                                                           {"from": "gpt", "value": a}]})
    (root / "presence.json").write_text(json.dumps(records))
    (root / "text.json").write_text(json.dumps(text))
    for empty in ("align.json", "instruct.json"):  # marks the folder as a world (no synthesis into it)
        (root / empty).write_text("[]")


def oracle_colours(backbone: Any, width: int) -> Any:
    """A stand-in tower with perfect colour features: per patch, a one-hot of each palette colour covering
    more than a quarter of it (background -> zeros), padded to ``width``.  An upper bound on what a
    pretrained tower could hand the projector."""
    from ablate.shapes.scene import COLORS

    palette = torch.tensor(list(COLORS.values()), dtype=torch.float32).view(1, -1, 3, 1, 1) / 255
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (backbone.mean, backbone.std))
    p = backbone.patch_size

    def forward(pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels * std + mean).unsqueeze(1)
        dist = ((x - palette) ** 2).sum(2)  # (B, colours, H, W)
        hit = torch.nn.functional.one_hot(dist.argmin(1), palette.shape[1]).float()
        hit = hit * (dist.min(1).values < 0.03).unsqueeze(-1).float()  # (B, H, W, colours)
        B, H, W, C = hit.shape
        cover = hit.view(B, H // p, p, W // p, p, C).mean((2, 4)).reshape(B, -1, C)
        return torch.nn.functional.pad((cover > 0.25).float() * 4.0, (0, width - C))
    return forward


def answer_accuracy(model: torch.nn.Module, batch: dict) -> float:
    """Share of rows whose first answer letter (Y/N, after the answer's leading space) is predicted."""
    emb, attn, labels, pos = model.merge(batch["input_ids"], batch["attention_mask"], batch["labels"],
                                         batch["pixel_values"], batch["has_image"])
    logits = model.llm(inputs_embeds=emb, attention_mask=attn, position_ids=pos).logits
    hits = []
    for r in range(labels.shape[0]):
        at = int((labels[r] != -100).nonzero()[1])
        hits.append(int(logits[r, at - 1].argmax()) == int(labels[r, at]))
    return sum(hits) / len(hits)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--images", type=int, default=1500)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--init-range", type=float, default=None, help="override llm.random_init.initializer_range")
    p.add_argument("--turns", type=int, default=2, help="questions per image (2: two one-question records)")
    p.add_argument("--binding", action="store_true", help="colour + shape questions (POPE's) instead of colour")
    p.add_argument("--max-objects", type=int, default=4, help="objects per scene: 1 to this many")
    p.add_argument("--size-factor", type=float, default=1.0, help="object size multiplier (>1: no small objects)")
    p.add_argument("--text-warmup", type=int, default=0,
                   help="first train the LM this many steps on the questions with the scene described in words")
    p.add_argument("--oracle-vision", action="store_true", help="perfect per-patch colour features (no tower)")
    p.add_argument("--pretrained", metavar="DIR", help="start from the tiny tower and LM that ablate.shapes.pretrain "
                   "saved in DIR (what `ablate demo` does: demo/pretrained-full)")
    p.add_argument("overrides", nargs="*", help="config overrides (default: the demo baseline's groups)")
    args = p.parse_args()
    torch.set_num_threads(1)

    from omegaconf import open_dict

    from ablate.data.llava import Collator
    from ablate.data.mixes import build_dataset
    from ablate.design import compose
    from ablate.models.vlm import build_vlm
    from ablate.shapes.demo import tower_overrides

    pretrained = [*tower_overrides(compose(["vision=tiny-clip"]).vision, Path(args.pretrained)),
                  f"llm.path={Path(args.pretrained) / 'tiny-llama'}", "llm.random_init=null"] if args.pretrained else []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_colour_presence(root, args.images, turns=args.turns, binding=args.binding,
                              max_objects=args.max_objects, size_factor=args.size_factor,
                              text_records=6000 if args.text_warmup else 0)
        cfg = compose(["vision=tiny-clip", "llm=tiny-llama", "projector=mlp", "image=letterbox", "data=shapes",
                       "train=tiny", "eval=shapes", f"data.root={root}",
                       "data.finetune=[{name:presence,json:presence.json,images:images},"
                       "{name:text,json:text.json,images:images}]", *pretrained, *args.overrides])
        if args.init_range is not None:
            with open_dict(cfg):
                cfg.llm.random_init.initializer_range = args.init_range
        torch.manual_seed(0)
        model = build_vlm(cfg)
        model.vision.requires_grad_(False)  # the frozen-vision recipes' setting
        if args.oracle_vision:
            model.vision.forward = oracle_colours(cfg.vision.backbones[0], model.vision.embed_dim)
        data = build_dataset(cfg, "finetune", model.tokenizer, model.prompt_format, model.image_transform)
        collate = Collator(int(model.tokenizer.pad_token_id))
        order = [i for i, image in enumerate(data.is_multimodal) if image]
        text_rows = [i for i, image in enumerate(data.is_multimodal) if not image]
        random.Random(0).shuffle(order)
        held_out, train = order[:200], order[200:]
        test_batch = collate([data[i] for i in held_out])
        text_test = collate([data[i] for i in text_rows[:200]]) if text_rows else None
        text_rows = text_rows[200:]
        params = [q for q in model.parameters() if q.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
        rng, losses, t0 = random.Random(1), [], time.perf_counter()
        init = cfg.llm.random_init.get("initializer_range", 0.02) if cfg.llm.random_init else f"n/a ({cfg.llm.path})"
        print(f"llm initializer_range {init}; "
              f"{len(train)} training / {len(held_out)} held-out questions; chance 0.5")
        for step in range(1, args.text_warmup + args.steps + 1):
            loss = model(collate([data[i] for i in rng.sample(text_rows if step <= args.text_warmup else train,
                                                               args.batch)]))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            losses.append(loss.item())
            if step % args.every == 0:
                model.eval()
                with torch.no_grad():
                    acc = answer_accuracy(model, test_batch)
                    text_acc = answer_accuracy(model, text_test) if text_test is not None else None
                model.train()
                text = f"  held-out text accuracy {text_acc:.3f}" if text_acc is not None else ""
                print(f"step {step}{' (text)' if step <= args.text_warmup else ''}: loss "
                      f"{sum(losses[-args.every:]) / args.every:.4f}  held-out accuracy {acc:.3f}{text}  "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
