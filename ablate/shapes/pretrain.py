"""Pretrained tiny components for the demo: a tiny vision tower that sees shapes and a tiny LM that reads scenes.

Why it exists: Prismatic studies design choices on top of *pretrained* vision backbones and LLMs; every design
point starts from the same pretrained components and trains the projector (and, per recipe, more).  Tiny
random-init models on 2 CPU cores never learn to look at their image in the demo's budget (bench/README.md:
presence questions stay at chance), so a demo with random-init components could not find any image effect.
This module pretrains the tiny components once, each on what its real counterpart learned before a VLM was
built from it, and saves them where the branches' ``vision.backbones[].path`` and ``llm.path`` point:

- ``pretrain_vision``: each branch of a tiny vision config learns per-patch labels of shapes-world scenes
  (which colours and shapes cover each patch, and whether a word does) through a linear probe on the features
  the VLM uses (the second-to-last block), under every registered image transform; saved as
  ``<dir>/<arch>.safetensors`` per branch.
- ``pretrain_llm``: the tiny LM learns to look things up in its context: presence questions about a scene
  listed in words where the image will go, half with negatives that share a colour or shape with a present
  object (binding), and in half of the conversations a plain description of the scene (what CHAIR asks).
  The chat variant (``tiny-llama-chat``, Vicuna format) starts from that LM and is tuned on the same lookups
  answered verbosely, chat-style (``ablate.shapes.chat``).  Saved with ``save_pretrained`` (the synthetic
  tokenizer is rebuilt in-process).  Mostly presence: with the whole task mix (its loss dominated by box coordinates) a 2-layer LM never learned the
  lookup (held-out hard-presence accuracy ~0.5 after 2,500 steps, vs 0.85 presence-only).

Scenes come from a seed of their own, never from the world's evaluation splits.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ablate.registry import IMAGE_TRANSFORMS
from ablate.shapes.chat import DESCRIBE_PROMPTS, plain_description
from ablate.shapes.questions import instruct_turn, qa_presence
from ablate.shapes.scene import COLORS, SHAPES, Scene, draw_object, draw_word, render
from ablate.shapes.training import train_scene

LABELS = (*COLORS, *SHAPES, "word")  # per-patch targets of the vision probe
DESCRIBE_SHARE = 0.5  # share of the LM's conversations that end with a plain description of the scene
CHAT_LR = 1e-3  # the chat variant's tuning from the base LM
POS_WEIGHT = 4.0
COVER = 0.25  # a patch has a label when its region covers more than this share of the patch


def ramp_cosine(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over the first 5% of ``steps`` under a cosine decay to zero over all of them."""
    from ablate.train.schedule import lambda_lr, warmup_cosine

    return lambda_lr(optimizer, warmup_cosine(steps, max(1, steps // 20), shift=1, cosine_from_start=True))


def label_masks(scene: Scene) -> torch.Tensor:
    """``(len(LABELS), H, W)`` uint8 masks (255 = covered) of each colour, shape and of words in ``scene``."""
    from PIL import Image, ImageDraw

    masks = [Image.new("L", (scene.width, scene.height), 0) for _ in LABELS]
    index = {name: i for i, name in enumerate(LABELS)}
    for o in scene.objects:
        for name in (o.color, o.shape):
            draw_object(ImageDraw.Draw(masks[index[name]]), o, 255)
    for wd in scene.words:
        draw_word(ImageDraw.Draw(masks[index["word"]]), wd, 255)
    import numpy as np

    return torch.from_numpy(np.stack([np.asarray(m) for m in masks]))


def patch_targets(masks: torch.Tensor, geometry: Callable[..., torch.Tensor], size: int, patch: int) -> torch.Tensor:
    """``(L, len(LABELS))`` 0/1 targets: the masks through the image transform's geometry, then per patch."""
    pad = (-masks.shape[0]) % 3
    x = torch.cat([masks, masks.new_zeros(pad, *masks.shape[1:])])
    warped = torch.cat([geometry(x[i:i + 3], size, (0, 0, 0)) for i in range(0, x.shape[0], 3)])[: masks.shape[0]]
    cover = nn.functional.avg_pool2d(warped.float().unsqueeze(0) / 255, patch)[0]  # (labels, g, g)
    return (cover > COVER).float().flatten(1).T


def _save_branches(vision: nn.Module, vision_cfg: Any, out: Path) -> list[Path]:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for (name, branch), b in zip(vision.branches.items(), vision_cfg.backbones, strict=True):
        path = out / f"{b.arch}.safetensors"
        save_file({k: v.contiguous() for k, v in branch.state_dict().items()}, str(path), metadata={"branch": name})
        paths.append(path)
    return paths


def pretrain_vision(vision_cfg: Any, out: str | Path, *, steps: int = 600, batch: int = 32, lr: float = 2e-3,
                    seed: int = 0, log: Callable[[str], None] = print) -> dict[str, float]:
    """Train every branch of ``vision_cfg`` on per-patch scene labels; save each branch; return the probe's
    held-out per-patch accuracy and its recall and precision per label group (colour, shape, word)."""
    from ablate.data.transforms import build_image_transform
    from ablate.models.vision import build_vision

    torch.manual_seed(seed)
    rng = random.Random(f"{seed}/pretrain-vision")
    vision = build_vision(vision_cfg)
    head = nn.Linear(vision.embed_dim, len(LABELS))
    # the whole-image geometries (letterbox, resize-naive, resize-crop); a tiling (anyres) is a class of its own
    # token layout, not a view the tower learns per patch
    image_ids = [i for i in IMAGE_TRANSFORMS.names() if not isinstance(IMAGE_TRANSFORMS.get(i), type)]
    transforms = {i: build_image_transform(i, vision_cfg) for i in image_ids}
    patch = int(vision_cfg.image_size) // vision.grid

    def sample(n: int) -> tuple[Any, torch.Tensor]:
        scenes = [train_scene(rng) for _ in range(n)]
        image_id = rng.choice(image_ids)
        pixels = transforms[image_id]([render(s) for s in scenes])
        geometry = IMAGE_TRANSFORMS.get(image_id)
        targets = torch.stack([patch_targets(label_masks(s), geometry, int(vision_cfg.image_size), patch)
                               for s in scenes])
        return pixels, targets

    held_out = [sample(batch) for _ in range(4)]
    pos_weight = torch.full((len(LABELS),), POS_WEIGHT)  # covered patches are rare: weigh them up
    params = [*vision.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    schedule = ramp_cosine(optimizer, steps)
    t0 = time.perf_counter()

    groups = {"colour": slice(0, len(COLORS)), "shape": slice(len(COLORS), len(COLORS) + len(SHAPES)),
              "word": slice(len(LABELS) - 1, len(LABELS))}

    def evaluate() -> dict[str, float]:
        """Held-out per-patch accuracy and, per label group, recall of covered patches and precision."""
        vision.eval()
        with torch.no_grad():
            pred = torch.cat([(head(vision(pixels)) > 0).float() for pixels, _ in held_out])
        targets = torch.cat([t for _, t in held_out])
        vision.train()
        out = {"acc": float((pred == targets).float().mean())}
        for g, sl in groups.items():
            p, t = pred[..., sl], targets[..., sl]
            out[f"{g} recall"] = float((p * t).sum() / t.sum().clamp(min=1))
            out[f"{g} precision"] = float((p * t).sum() / p.sum().clamp(min=1))
        return out

    for step in range(1, steps + 1):
        pixels, targets = sample(batch)
        loss = nn.functional.binary_cross_entropy_with_logits(head(vision(pixels)), targets, pos_weight=pos_weight)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        if step % max(1, steps // 4) == 0 or step == steps:
            m = evaluate()
            log(f"pretrain vision={vision_cfg.id} step {step}/{steps}: loss {loss.item():.4f}, held-out per-patch "
                + ", ".join(f"{k} {v:.3f}" for k, v in m.items()) + f" ({time.perf_counter() - t0:.0f} s)")
    paths = _save_branches(vision, vision_cfg, Path(out))
    log(f"pretrain vision={vision_cfg.id}: saved {', '.join(str(p) for p in paths)}")
    return evaluate()


def in_words(scene: Scene) -> str:
    """The scene as a short list of what is in it (what a presence lookup needs; positions are left out)."""
    things = [o.name for o in scene.objects] + [f'the word "{w.word}"' for w in scene.words]
    return "Scene: " + ", ".join(things) + "."


def scene_in_words(scene: Scene, rng: random.Random, turns: int = 3) -> list[tuple[str, str]]:
    """A training conversation about ``scene`` given in words: ``turns`` presence questions, half of their
    negatives sharing a colour or shape with a present object, so that the LM learns to look things up in its
    context and to bind colour to shape (the language skill its VLM's POPE-style questions rely on)."""
    conv: list[tuple[str, str]] = []
    for k in range(turns):
        human, answer = instruct_turn(qa_presence(scene, rng, hard=rng.random() < 0.5), rng)
        conv += [("user", f"{in_words(scene)}\n{human}" if k == 0 else human), ("assistant", answer)]
    if rng.random() < DESCRIBE_SHARE:  # a plain description too, so both LM levels can caption (CHAIR)
        conv += [("user", rng.choice(DESCRIBE_PROMPTS)), ("assistant", plain_description(scene))]
    return conv


def chat_in_words(scene: Scene, rng: random.Random) -> list[tuple[str, str]]:
    """The chat variant's conversations: the same lookups, answered verbosely (``ablate.shapes.chat``)."""
    from ablate.shapes.chat import chat_conversation

    return chat_conversation(scene, rng, in_words(scene))


def pretrain_llm(llm_cfg: Any, out: str | Path, *, steps: int = 1500, batch: int = 16, lr: float = 2e-3,
                 seed: int = 0, log: Callable[[str], None] = print,
                 conversations: Callable[[Scene, random.Random], list[tuple[str, str]]] = scene_in_words
                 ) -> dict[str, float]:
    """Train the tiny LM of ``llm_cfg`` (from its ``path`` when set: the chat variant starts from the base
    LM) on ``conversations`` about scenes in words; ``save_pretrained`` it to ``out``; return the held-out
    answer-token accuracy and the accuracy on presence questions with hard negatives (binding)."""
    from ablate.data.llava import Example, collate
    from ablate.models.llm import build_llm, build_tokenizer, target_loss
    from ablate.models.prompts import IGNORE_INDEX, get_prompt_format, tokenize_conversation

    torch.manual_seed(seed)
    rng = random.Random(f"{seed}/pretrain-llm")
    tokenizer = build_tokenizer(llm_cfg)
    model = build_llm(llm_cfg, tokenizer)
    fmt = get_prompt_format(llm_cfg.prompt_format, tokenizer)
    max_length = int(llm_cfg.max_length)

    def sample(n: int) -> dict[str, Any]:
        rows = [tokenize_conversation(tokenizer, fmt, conversations(train_scene(rng), rng)) for _ in range(n)]
        # an LM alone: empty pixels (the batch's pixel_values are never read)
        return collate([Example(f"words-{i}", torch.tensor(ids[:max_length]), torch.tensor(labels[:max_length]),
                                torch.zeros(0), False) for i, (ids, labels) in enumerate(rows)],
                       int(tokenizer.pad_token_id))

    held_out = [sample(batch) for _ in range(8)]
    probe_rows = []  # POPE-style binding in words: the scene + a presence question with hard negatives
    for _ in range(128):
        scene = train_scene(rng)
        question, answer = instruct_turn(qa_presence(scene, rng, hard=True), rng)
        ids, labels = tokenize_conversation(tokenizer, fmt, [("user", f"{in_words(scene)}\n{question}"),
                                                             ("assistant", answer)])
        # the answer's first non-blank token ("Y"/"N": the reply's leading space is a token of its own)
        at = next(i for i, lab in enumerate(labels) if lab != IGNORE_INDEX and tokenizer.decode([lab]).strip())
        probe_rows.append((torch.tensor([ids[:at]]), ids[at]))

    def binding_accuracy() -> float:
        """Share of the hard presence questions whose answer token ("Y"/"N") is the argmax."""
        hits = 0
        with torch.no_grad():
            for prompt, answer_id in probe_rows:
                hits += int(int(model(input_ids=prompt).logits[0, -1].argmax()) == answer_id)
        return hits / len(probe_rows)

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = ramp_cosine(optimizer, steps)
    t0 = time.perf_counter()

    def evaluate() -> float:
        model.eval()
        hits = total = 0
        with torch.no_grad():
            for b in held_out:
                logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1]
                target = b["labels"][:, 1:]
                mask = target != IGNORE_INDEX
                hits += int(((logits.argmax(-1) == target) & mask).sum())
                total += int(mask.sum())
        model.train()
        return hits / max(total, 1)

    for step in range(1, steps + 1):
        b = sample(batch)
        loss = target_loss(model, b["labels"], input_ids=b["input_ids"], attention_mask=b["attention_mask"])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % max(1, steps // 5) == 0 or step == steps:
            log(f"pretrain llm={llm_cfg.id} step {step}/{steps}: loss {loss.item():.4f}, held-out answer-token "
                f"accuracy {evaluate():.3f}, hard presence accuracy {binding_accuracy():.3f} "
                f"({time.perf_counter() - t0:.0f} s)")
    Path(out).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    log(f"pretrain llm={llm_cfg.id}: saved {out}")
    return {"answer_acc": evaluate(), "hard_presence_acc": binding_accuracy()}


def _pretrain_job(kind: str, cfg: Any, out: str, steps: int) -> dict[str, float]:
    torch.set_num_threads(1)
    if kind == "vision":
        return pretrain_vision(cfg, out, steps=steps)
    if kind == "chat":  # (base LM config, chat LM config): the base first, then the chat variant from it
        from omegaconf import OmegaConf

        base, chat = cfg
        metrics = pretrain_llm(base, Path(out) / str(base.id), steps=steps[0])
        chat_cfg = OmegaConf.merge(chat, {"path": str(Path(out) / str(base.id)), "random_init": None})
        chat_metrics = pretrain_llm(chat_cfg, Path(out) / str(chat.id), steps=steps[1], lr=CHAT_LR,
                                    conversations=chat_in_words)
        return {**metrics, **{f"chat_{k}": v for k, v in chat_metrics.items()}}
    return pretrain_llm(cfg, out, steps=steps)


def ensure_pretrained(vision_cfgs: list[Any], llm_cfg: Any, out: str | Path, *, vision_steps: int,
                      llm_steps: int, workers: int = 2, chat_cfg: Any = None, chat_steps: int = 0) -> Path:
    """Pretrain, once, every tiny vision config of ``vision_cfgs`` and the tiny LM into ``out`` (parallel
    processes) -- with ``chat_cfg``, then its chat variant from the LM (same process, ``chat_steps``);
    ``out/DONE`` marks a complete set, so later calls return at once.  Returns ``out``."""
    import json
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from omegaconf import OmegaConf

    out = Path(out)
    if (out / "DONE").exists():
        return out
    seen: dict[str, str] = {}
    jobs: list[tuple[str, Any, str, int]] = []
    for v in {str(v.id): v for v in vision_cfgs}.values():
        for b in v.backbones:
            if str(b.arch) in seen:
                raise ValueError(f"pretrain: arch {b.arch!r} is in vision={seen[b.arch]} and vision={v.id}; its "
                                 f"weights file {out / (str(b.arch) + '.safetensors')} can hold only one")
            seen[str(b.arch)] = str(v.id)
        v = OmegaConf.create(OmegaConf.to_container(v, resolve=True))
        for b in v.backbones:
            b.path = None  # pretraining starts from random init
        jobs.append(("vision", v, str(out), vision_steps))
    if chat_cfg is not None:
        jobs.append(("chat", (llm_cfg, chat_cfg), str(out), (llm_steps, chat_steps)))  # type: ignore[arg-type]
    else:
        jobs.append(("llm", llm_cfg, str(out / str(llm_cfg.id)), llm_steps))
    jobs.sort(key=lambda j: j[0] not in ("llm", "chat"))  # the longest job first
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        results = {f"{kind}={cfg[-1].id if kind == 'chat' else cfg.id}": pool.submit(_pretrain_job, kind, cfg, o, s)
                   for kind, cfg, o, s in jobs}
        metrics = {name: f.result() for name, f in results.items()}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    (out / "DONE").write_text("pretrained tiny components: " + ", ".join(metrics) + "\n")
    return out
