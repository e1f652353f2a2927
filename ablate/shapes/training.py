"""The shapes world's training files: ``images/``, ``align.json``, ``instruct.json`` and ``presence.json``
(LLaVA chat JSON), read by the same loaders as the real LLaVA mixes."""

from __future__ import annotations

import random
from pathlib import Path

from ablate.shapes.questions import (
    CAPTION_PROMPTS,
    TRAIN_FAMILIES,
    TRAIN_WEIGHTS,
    caption,
    conversation,
    instruct_turn,
    language_only,
    qa_color_presence,
)
from ablate.shapes.scene import Scene, dump_json, render, sample_scene, save


# ------------------------------------------------------------------------------------------- training
def train_scene(rng: random.Random) -> Scene:
    aspect = rng.choices(("wide", "tall", "square"), (0.4, 0.3, 0.3))[0]
    n_words = 1 if rng.random() < 0.3 else 0
    group = rng.randint(2, 5) if rng.random() < 0.25 else 0
    return sample_scene(rng, aspect, rng.randint(1, 5), n_words=n_words, group=group,
                        edge_target=rng.random() < 0.3)


# keeps a conversation within the tiny LMs' 256 tokens in every prompt format (the synthetic BPE packs ~2
# characters per token; the Vicuna system prompt and role tags add ~100 tokens)
MAX_CONVERSATION_CHARS = 300


def instruct_turns(scene: Scene, rng: random.Random, max_chars: int = MAX_CONVERSATION_CHARS) -> list[tuple[str, str]]:
    """2-4 (human, assistant) turns about ``scene`` from the training task mix (``TRAIN_WEIGHTS``), distinct
    questions, within ``max_chars`` characters."""
    families, weights = zip(*TRAIN_WEIGHTS.items(), strict=True)
    turns: list[tuple[str, str]] = []
    seen: set[str] = set()
    n_turns = rng.randint(2, 4)
    for _ in range(20):
        if len(turns) == n_turns:
            break
        qa = TRAIN_FAMILIES[rng.choices(families, weights)[0]](scene, rng)
        if qa is None or qa.question in seen:
            continue
        turn = instruct_turn(qa, rng)
        if turns and sum(len(h) + len(g) for h, g in [*turns, turn]) > max_chars:
            break
        seen.add(qa.question)
        turns.append(turn)
    return turns


PRESENCE_PER_IMAGE = 3


def presence_records(scene: Scene, name: str, rng: random.Random, k: int = PRESENCE_PER_IMAGE) -> list[dict]:
    """``k`` one-question records of distinct colour-presence questions about one image, yes and no
    alternating from a random start (one question per record: the tiny models learn the lookup faster from
    single-turn records than from the same questions as turns of one conversation, bench/README.md)."""
    out, asked, positive = [], set(), rng.random() < 0.5
    for _ in range(4 * k):
        if len(out) == k:
            break
        qa = qa_color_presence(scene, rng, positive)
        if qa.question in asked:
            positive = not positive
            continue
        asked.add(qa.question)
        turn = instruct_turn(qa, rng)
        out.append({"id": f"presence-{name.split('.')[0]}-{len(out)}", "image": name,
                    "conversations": conversation([turn], image=True)})
        positive = not positive
    return out


def write_training(out: Path, size: int, seed: int, progress: bool = False) -> dict[str, int]:
    """``images/``, ``align.json`` (one caption per image), ``instruct.json`` (2-4 QA turns per image plus
    size/10 language-only conversations) and ``presence.json`` (``PRESENCE_PER_IMAGE`` colour-presence
    questions per image, LRV-Instruct style; what data=shapes-presence trains on)."""
    from tqdm import tqdm

    rng, presence_rng = random.Random(f"{seed}/train"), random.Random(f"{seed}/presence")
    align, instruct, presence = [], [], []
    for i in tqdm(range(size), desc="synth train", disable=not progress):
        scene = train_scene(rng)
        name = f"{i:06d}.jpg"
        save(render(scene), out / "images" / name)
        align.append({"id": f"align-{i:06d}", "image": name,
                      "conversations": conversation([(rng.choice(CAPTION_PROMPTS), caption(scene))], image=True)})
        turns = instruct_turns(scene, rng)
        instruct.append({"id": f"instruct-{i:06d}", "image": name, "conversations": conversation(turns, image=True)})
        presence += presence_records(scene, name, presence_rng)
    for j in range(max(1, size // 10)):
        instruct.append({"id": f"text-{j:06d}", "conversations": conversation(language_only(rng), image=False)})
    random.Random(f"{seed}/order").shuffle(instruct)
    dump_json(out / "align.json", align)
    dump_json(out / "presence.json", presence)
    dump_json(out / "instruct.json", instruct)  # last: its presence marks a complete world (ensure_world)
    return {"images": size, "align.json": len(align), "instruct.json": len(instruct), "presence.json": len(presence)}
