"""The VLM: image tokens after BOS with labels -100, loss on assistant tokens only, batched greedy generate
== one-at-a-time, option scoring, save -> load identical, rope-2d == 1d on text-only input."""

from __future__ import annotations

import torch
from PIL import Image
from tiny_configs import tiny_cfg

from ablate.models.prompts import IGNORE_INDEX, tokenize_conversation
from ablate.models.vlm import VLM

RED = Image.new("RGB", (80, 50), (220, 20, 20))
BLUE = Image.new("RGB", (40, 70), (20, 20, 220))
CONVS = [[("user", "<image>\nWhat colour is the shape?"), ("assistant", "red")],
         [("user", "How many shapes are there?"), ("assistant", "three"), ("user", "Left?"), ("assistant", "yes")]]


def collate(model: VLM, convs, images, has_image):
    rows = [tokenize_conversation(model.tokenizer, model.prompt_format, c) for c in convs]
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), model.tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), IGNORE_INDEX)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (a, b) in enumerate(rows):
        ids[i, :len(a)], labels[i, :len(b)], mask[i, :len(a)] = torch.tensor(a), torch.tensor(b), 1
    return dict(pixel_values=model.image_transform(images), input_ids=ids, attention_mask=mask, labels=labels,
                has_image=torch.tensor(has_image), example_ids=[str(i) for i in range(len(rows))])


def test_merge_places_image_after_bos_and_masks_labels(tiny_vlm):
    batch = collate(tiny_vlm, CONVS, [RED, RED], [True, False])
    embeds, attn, labels, pos = tiny_vlm.merge(batch["input_ids"], batch["attention_mask"], batch["labels"],
                                               batch["pixel_values"], batch["has_image"])
    T = tiny_vlm.num_image_tokens
    assert T == 64 and embeds.shape[1] == batch["input_ids"].shape[1] + T
    bos = tiny_vlm.llm.get_input_embeddings()(torch.tensor([tiny_vlm.tokenizer.bos_token_id]))[0]
    torch.testing.assert_close(embeds[0, 0], bos)
    image_tokens = tiny_vlm.embed_images(batch["pixel_values"][:1])[0]
    torch.testing.assert_close(embeds[0, 1:1 + T], image_tokens)
    assert bool((labels[0, :1 + T] == IGNORE_INDEX).all()) and bool(attn[0, :1 + T].all())
    # text-only row (the longest, so it ends attended): T masked filler slots first, then the row unchanged
    assert not bool(attn[1, :T].any()) and torch.equal(labels[1, T:], batch["labels"][1])
    assert pos[1, T:].tolist() == list(range(batch["input_ids"].shape[1]))
    for row in range(2):  # the loss sees exactly the assistant tokens
        target = [t for t in labels[row].tolist() if t != IGNORE_INDEX]
        assert tiny_vlm.tokenizer.decode(target) == [" red</s>", " three</s> yes</s>"][row]
    assert pos[0, :1 + T + 3].tolist() == list(range(1 + T + 3))


def test_forward_loss_is_mean_over_assistant_tokens(tiny_vlm):
    batch = collate(tiny_vlm, CONVS, [RED, RED], [True, False])
    loss = tiny_vlm(batch)
    embeds, attn, labels, pos = tiny_vlm.merge(batch["input_ids"], batch["attention_mask"], batch["labels"],
                                               batch["pixel_values"], batch["has_image"])
    logits = tiny_vlm.llm(inputs_embeds=embeds, attention_mask=attn, position_ids=pos).logits
    manual = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(),
                                               ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(loss, manual)
    loss.backward()
    assert tiny_vlm.projector[0].weight.grad is not None and tiny_vlm.projector[0].weight.grad.abs().sum() > 0
    tiny_vlm.zero_grad()


def test_forward_loss_and_gradients_equal_hf_labels_loss(tiny_vlm):
    """``forward`` runs the LM head only where a target is predicted (``target_loss``); value and every
    gradient are those of HF's own ``labels=`` loss over all positions of the merged sequence."""
    batch = collate(tiny_vlm, CONVS, [RED, BLUE], [True, True])
    embeds, attn, labels, pos = tiny_vlm.merge(batch["input_ids"], batch["attention_mask"], batch["labels"],
                                               batch["pixel_values"], batch["has_image"])
    hf = tiny_vlm.llm(inputs_embeds=embeds, attention_mask=attn, position_ids=pos, labels=labels).loss
    params = [p for p in tiny_vlm.parameters() if p.requires_grad]  # the LM's and the projector's
    hf_grads = torch.autograd.grad(hf, params, retain_graph=True, allow_unused=True)
    ours = tiny_vlm(batch)
    grads = torch.autograd.grad(ours, params, allow_unused=True)
    torch.testing.assert_close(ours, hf)
    assert sum(g is not None for g in hf_grads) > 10
    for g, h in zip(grads, hf_grads, strict=True):
        assert (g is None) == (h is None)
        if h is not None:
            torch.testing.assert_close(g, h)


def test_all_text_batch_trains_a_projector_only_stage_with_zero_gradient(tiny_vlm):
    """A cotraining batch with no image under a projector-only stage: backward works (no 'does not require
    grad' error) and leaves the projector a zero gradient; the loss equals the text-only forward's."""
    batch = collate(tiny_vlm, CONVS[1:] * 2, [RED, RED], [False, False])
    trainable = {n: p.requires_grad for n, p in tiny_vlm.named_parameters()}
    try:
        for name, p in tiny_vlm.named_parameters():
            p.requires_grad_(name.startswith("projector."))
        tiny_vlm.train()
        loss = tiny_vlm(batch)
        loss.backward()
        grads = [p.grad for p in tiny_vlm.projector.parameters()]
        assert all(g is not None and not bool(g.any()) for g in grads)
        tiny_vlm.eval()
        with torch.no_grad():
            torch.testing.assert_close(loss.detach(), tiny_vlm(batch))
    finally:
        tiny_vlm.zero_grad(set_to_none=True)
        for name, p in tiny_vlm.named_parameters():
            p.requires_grad_(trainable[name])


def test_batched_generate_equals_one_at_a_time(tiny_vlm):
    images = [RED, None, BLUE, RED]
    prompts = ["What colour is the shape?", "How many shapes are there in this picture?", "Where?", "Is it red?"]
    batched = tiny_vlm.generate_ids(images, prompts, max_new_tokens=8)
    single = [tiny_vlm.generate_ids([im], [p], max_new_tokens=8)[0] for im, p in zip(images, prompts, strict=True)]
    assert batched == single
    assert all(len(row) > 0 for row in batched)


def test_score_options_are_normalized_probabilities(tiny_vlm):
    probs = tiny_vlm.score_options([RED, BLUE], ["Is it red?", "Colour?"], [["yes", "no"], ["red", "dark blue"]])
    assert probs.shape == (2, 2)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))
    single = tiny_vlm.score_options([BLUE], ["Colour?"], ["red", "dark blue"])
    torch.testing.assert_close(single[0], probs[1], atol=1e-5, rtol=1e-4)


def test_options_differing_in_their_last_token_take_one_pass_with_the_same_probabilities(tiny_vlm):
    images, prompts = [RED, None, BLUE], ["Is it red?", "Is the sky blue?", "Which letter?"]
    options = [["yes", "no"], ["yes", "no"], ["A", "B"]]  # " A" is two tokens: a shared space, then the letter
    ids = [[tiny_vlm.tokenizer(" " + o, add_special_tokens=False)["input_ids"] for o in opts] for opts in options]
    assert all(len(t) == len(opts[0]) and t[:-1] == opts[0][:-1] for opts in ids for t in opts)  # fast path
    fast = tiny_vlm.score_options(images, prompts, options)
    with torch.no_grad():
        full = tiny_vlm._score_sequences(images, prompts, ids)
    torch.testing.assert_close(fast, full, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(fast[0], fast[1])  # the image (or its absence) changes the answer


def test_save_load_round_trip_identical(tiny_vlm, tmp_path):
    tiny_vlm.save_pretrained(tmp_path / "model")
    loaded = VLM.from_pretrained(tmp_path / "model").eval()
    batch = collate(tiny_vlm, CONVS, [RED, RED], [True, False])
    with torch.no_grad():
        assert torch.equal(tiny_vlm(batch), loaded(batch))
    assert loaded.generate([BLUE], ["Colour?"], max_new_tokens=6) == tiny_vlm.generate([BLUE], ["Colour?"],
                                                                                         max_new_tokens=6)


def test_rope_2d_matches_1d_on_text_and_differs_with_image(tiny_vlm):
    cfg = tiny_cfg("vision=tiny-clip", "projector=mlp", "llm.image_positions=rope-2d")
    rope = VLM(cfg, tiny_vlm.vision, tiny_vlm.projector, tiny_vlm.llm, tiny_vlm.tokenizer).eval()

    def logits(model, images, has_image):
        batch = collate(model, CONVS, images, has_image)
        e, a, _, p = model.merge(batch["input_ids"], batch["attention_mask"], None, batch["pixel_values"],
                                 batch["has_image"])
        with torch.no_grad():
            return model.llm(inputs_embeds=e, attention_mask=a, position_ids=p).logits, p

    text_1d, _ = logits(tiny_vlm, [RED, RED], [False, False])
    text_2d, _ = logits(rope, [RED, RED], [False, False])
    assert torch.equal(text_1d, text_2d)
    img_1d, _ = logits(tiny_vlm, [RED, RED], [True, False])
    img_2d, pos = logits(rope, [RED, RED], [True, False])
    assert not torch.allclose(img_1d[0], img_2d[0])
    grid = 8  # tiny-clip: 64 px / 8 px patches; image starts at position 1 (after BOS)
    assert pos[:, 0, 1 + grid + 2].tolist() == [1, 2, 3]  # image token (row 1, col 2)
    assert pos[:, 0, 1 + grid * grid].tolist() == [1 + grid] * 3  # text after the image
    assert rope.generate([RED], ["Colour?"], max_new_tokens=4) is not None
