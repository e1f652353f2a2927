"""The shapes world's CHAIR and negative-instruction benchmarks: exact object lists and answers, read by the
same loaders as COCO / LRV; and the chat-style conversations of the tiny chat LM."""

from __future__ import annotations

import json
import random
from pathlib import Path

from ablate.eval.benchmarks import get_benchmark
from ablate.shapes.chat import chat_conversation
from ablate.shapes.hallucination import OBJECT_NAMES
from ablate.shapes.scene import COLORS, SHAPES


def test_shapes_chair_gold_is_each_scenes_exact_object_list(world: Path) -> None:
    scenes = json.loads((world / "eval/scenes.json").read_text())
    bench = get_benchmark("chair", world / "eval")
    examples = bench.load()
    assert len(examples) >= 24
    for ex in examples:
        scene = scenes[str(ex.image.relative_to(world / "eval"))]
        assert ex.gold == sorted(o["name"] for o in scene["objects"])
    assert examples[0].prompt == "\nPlease describe this image in detail."


def test_shapes_chair_counts_a_caption_naming_an_absent_object(world: Path) -> None:
    bench = get_benchmark("chair", world / "eval")
    ex = next(e for e in bench.load() if len(e.gold) >= 2)
    present = ex.gold[0]
    absent = next(n for n in OBJECT_NAMES if n not in ex.gold)
    faithful = bench.score(ex, f"A large {present} at the top left.")
    assert (faithful["chair_s"], faithful["chair_i"], faithful["score"]) == (0.0, 0.0, 1.0)
    wrong = bench.score(ex, f"A small {present} and two {absent}s next to a {present}.")
    # mentions: present, absent (plural), present -> 1 of 3 hallucinated
    assert wrong["mentioned_objects"] == [present, absent, present]
    assert wrong["hallucinated_objects"] == [absent]
    assert (wrong["chair_s"], wrong["chair_i"], wrong["score"]) == (1.0, 1 / 3, 0.0)
    # the COCO lists do not know the shapes: the world's own synonyms.txt is what the benchmark reads
    assert (world / "eval/chair/synonyms.txt").read_text().splitlines() == list(OBJECT_NAMES)
    assert len(OBJECT_NAMES) == len(COLORS) * len(SHAPES)


def test_shapes_negative_instructions_have_exact_answers(world: Path) -> None:
    scenes = json.loads((world / "eval/scenes.json").read_text())
    bench = get_benchmark("lrv-neg", world / "eval", closed_set_mode="generate")
    examples = bench.load()
    tasks = {e.meta["task"] for e in examples}
    assert tasks == {"positive", "negative-nonexistent", "negative-existent-attribute", "negative-knowledge"}
    for ex in examples:
        names = {o["name"] for o in scenes[str(ex.image.relative_to(world / "eval"))]["objects"]}
        assert ex.gold == ("yes" if ex.meta["task"] == "positive" else "no"), ex
        if ex.meta["task"] in ("positive", "negative-nonexistent"):
            asked = ex.prompt.removeprefix("\nIs there a ").removesuffix(" in the image?")
            assert (asked in names) == (ex.meta["task"] == "positive"), ex
        assert bench.score(ex, ex.meta["gold_answer"])["score"] == 1.0
    yes_to_all = [bench.score(e, "Yes.") for e in examples]
    m = bench.aggregate(yes_to_all)
    assert m["accuracy_positive"] == 1.0 and m["accuracy_negative"] == 0.0 and m["yes_ratio"] == 1.0


def test_chat_conversations_are_verbose_and_start_with_the_verdict() -> None:
    from ablate.shapes.training import train_scene

    rng = random.Random(0)
    scene = train_scene(rng)
    conv = chat_conversation(scene, rng, "Scene: ...", turns=2)
    assert [role for role, _ in conv] == ["user", "assistant"] * 3
    for (_, question), (_, answer) in zip(conv[0:4:2], conv[1:4:2], strict=True):
        name = question.split("Is there a ")[1].split(" in the image?")[0]
        present = any(o.name == name for o in scene.objects)
        assert answer.startswith("Yes, there is" if present else "No, there is no")
        assert len(answer.split()) > 10
    assert len(conv[-1][1].split()) > 10
