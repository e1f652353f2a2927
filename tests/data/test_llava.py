"""LLaVA datasets: round trip of the shapes world, loss masks per prompt format, truncation, collation, and
every bad-data case giving the named error (fail) or a counted skip."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ablate.data.llava import (
    CORRUPT_IMAGE,
    MALFORMED,
    MISSING_IMAGE,
    NO_ASSISTANT,
    BadDataError,
    DataStats,
    LlavaDataset,
    Record,
    collate,
    read_records,
)
from ablate.models.prompts import get_prompt_format
from ablate.shapes.tokenizer import shapes_tokenizer


def to_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img.resize((8, 8)), dtype=np.float32)).permute(2, 0, 1) / 255


@pytest.fixture(scope="module")
def tokenizer():
    return shapes_tokenizer()


def _runs(labels: torch.Tensor) -> list[list[int]]:
    """Contiguous stretches of supervised label ids."""
    runs: list[list[int]] = []
    prev = False
    for t in labels.tolist():
        if t != -100:
            if not prev:
                runs.append([])
            runs[-1].append(t)
        prev = t != -100
    return runs


def test_shapes_instruct_round_trips_into_batches(world: Path, tokenizer) -> None:
    raw = json.loads((world / "instruct.json").read_text())
    stats = DataStats()
    records = read_records(world / "instruct.json", world / "images", source="shapes-instruct", stats=stats)
    assert len(records) == len(raw) and stats.skipped == {}
    assert sum(not r.has_image for r in records) == sum("image" not in x for x in raw) > 0
    ds = LlavaDataset(records, tokenizer, get_prompt_format("base", tokenizer), to_tensor, max_length=512,
                      stats=stats)
    text_only = next(i for i, r in enumerate(records) if not r.has_image)
    batch = collate([ds[0], ds[1], ds[text_only]], tokenizer.pad_token_id)
    assert batch["pixel_values"].shape == (3, 3, 8, 8)
    assert batch["has_image"].tolist() == [records[0].has_image, records[1].has_image, False]
    assert batch["pixel_values"][2].abs().sum() == 0
    assert batch["example_ids"] == [raw[0]["id"], raw[1]["id"], raw[text_only]["id"]]
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    n = int(batch["attention_mask"][2].sum())
    assert (batch["input_ids"][2, n:] == tokenizer.pad_token_id).all() and (batch["labels"][2, n:] == -100).all()


@pytest.mark.parametrize("format_id", ["base", "vicuna-v1.5", "llama-2-chat", "mistral-instruct"])
def test_loss_mask_is_exactly_the_assistant_replies(world: Path, tokenizer, format_id: str) -> None:
    records = read_records(world / "instruct.json", world / "images", source="s")
    ds = LlavaDataset(records, tokenizer, get_prompt_format(format_id, tokenizer), to_tensor, max_length=2048)
    for i in range(6):
        ex = ds[i]
        replies = [text for role, text in records[i].conversation if role == "assistant"]
        runs = _runs(ex.labels)
        assert [tokenizer.decode(r) for r in runs] == [f" {reply}</s>" for reply in replies]
        assert ex.input_ids[0] == tokenizer.bos_token_id
        prompt_text = "".join(t for t, target in ds.prompt_format.render(records[i].conversation) if not target)
        assert tokenizer.decode(ex.input_ids[ex.labels == -100]) == "<s>" + prompt_text
        assert records[i].conversation[0][1].replace("<image>\n", "") in prompt_text


def test_truncation_counts_records_that_share_an_id(world: Path, tokenizer) -> None:
    import dataclasses

    records = read_records(world / "instruct.json", world / "images", source="s")
    stats = DataStats()
    ds = LlavaDataset(records, tokenizer, get_prompt_format("base", tokenizer), to_tensor, max_length=8, stats=stats)
    shared = [dataclasses.replace(r, example_id="same-id") for r in records[:3]]  # as LRV's image-id ids
    for r in shared:
        ds.tokenize(r)
    assert stats.truncated == 3


def test_truncation_is_counted_once_per_example(world: Path, tokenizer) -> None:
    records = read_records(world / "instruct.json", world / "images", source="s")
    stats = DataStats()
    ds = LlavaDataset(records, tokenizer, get_prompt_format("base", tokenizer), to_tensor, max_length=40, stats=stats)
    long_ids = [i for i, r in enumerate(records) if len(ds.tokenize(r)[0]) >= 40]
    stats.truncated_ids.clear()
    assert long_ids
    for _ in range(2):
        for i in long_ids:
            ex = ds[i]
            assert ex is None or len(ex.input_ids) == 40
    assert stats.truncated == len(long_ids)
    # examples whose every reply lies past max_length are skipped and counted, never trained on silently
    assert stats.truncated_ids >= {(records[i].source, records[i].index) for i in long_ids}
    assert stats.skipped.get("no-target-after-truncation", 0) == sum(ds[i] is None for i in long_ids)


# --------------------------------------------------------------------------------------------- bad data
def _write(tmp: Path, records: list) -> Path:
    (tmp / "img").mkdir(exist_ok=True)
    Image.new("RGB", (16, 8), (200, 10, 10)).save(tmp / "img/ok.jpg")
    (tmp / "img/corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    path = tmp / "data.json"
    path.write_text(json.dumps(records))
    return path


GOOD = {"id": "good", "image": "ok.jpg", "conversations": [{"from": "human", "value": "<image>\nWhat?"},
                                                           {"from": "gpt", "value": "red"}]}
BAD_CASES = [
    ({"id": "x", "image": "nope.jpg", "conversations": GOOD["conversations"]}, MISSING_IMAGE, "nope.jpg"),
    ({"id": "x", "conversations": [{"from": "human", "value": "hi"}]}, NO_ASSISTANT, "no assistant"),
    ({"id": "x", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "  "}]},
     NO_ASSISTANT, "no assistant"),
    ({"id": "x", "conversations": []}, MALFORMED, "conversations"),
    ({"id": "x", "conversations": [{"from": "robot", "value": "hi"}]}, MALFORMED, "conversations[0]"),
    ({"id": "x", "conversations": [{"from": "gpt", "value": "a"}, {"from": "human", "value": "b"}]}, MALFORMED,
     "conversations[0]"),
    (["not", "a", "record"], MALFORMED, "expected an object"),
]


@pytest.mark.parametrize(("bad", "reason", "detail"), BAD_CASES)
def test_bad_record_fails_with_file_and_index_or_is_counted(tmp_path: Path, bad, reason: str, detail: str) -> None:
    path = _write(tmp_path, [GOOD, bad, GOOD])
    with pytest.raises(BadDataError, match=rf"{re.escape(str(path))}: record 1\b.*{re.escape(detail)}"):
        read_records(path, tmp_path / "img", source="t", on_bad_example="fail")
    stats = DataStats()
    records = read_records(path, tmp_path / "img", source="t", on_bad_example="skip", stats=stats)
    assert [r.index for r in records] == [0, 2]
    assert stats.skipped == {reason: 1} and stats.read["t"] == 3 and stats.kept["t"] == 2
    assert "record 1" in stats.examples[0]


def test_trailing_unanswered_question_is_trimmed_and_counted(tmp_path: Path) -> None:
    turns = [*GOOD["conversations"], {"from": "human", "value": "And?"}]
    stats = DataStats()
    (record,) = read_records(_write(tmp_path, [{**GOOD, "conversations": turns}]), tmp_path / "img", source="t",
                             stats=stats)
    assert record.conversation == (("user", "<image>\nWhat?"), ("assistant", "red"))
    assert stats.to_dict()["trimmed_questions"] == 1


def test_malformed_json_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"id": "a", "conversations": []},\n  {"id": "b" "conversations": []}\n]')
    with pytest.raises(BadDataError, match=r"broken\.json: malformed JSON at line 3 column 14"):
        read_records(path, tmp_path, source="t")
    path.write_text('{"id": "a"}')
    with pytest.raises(BadDataError, match="expected a JSON list"):
        read_records(path, tmp_path, source="t")


def test_corrupt_image_is_skipped_and_counted_or_fails(tmp_path: Path, tokenizer) -> None:
    _write(tmp_path, [])
    conv = (("user", "<image>\nWhat?"), ("assistant", "red"))
    records = [Record("ok", tmp_path / "img/ok.jpg", conv, "t", 0), Record("bad", tmp_path / "img/corrupt.jpg", conv, "t", 1)]
    pf = get_prompt_format("base", tokenizer)
    stats = DataStats()
    ds = LlavaDataset(records, tokenizer, pf, to_tensor, max_length=64, stats=stats)
    assert ds[1] is None and ds[1] is None
    assert stats.skipped == {CORRUPT_IMAGE: 1}
    batch = collate([ds[0], ds[1]], tokenizer.pad_token_id)
    assert batch["example_ids"] == ["ok"]
    with pytest.raises(BadDataError, match="all 1 examples"):
        collate([ds[1]], tokenizer.pad_token_id)
    strict = LlavaDataset(records, tokenizer, pf, to_tensor, max_length=64, on_bad_example="fail")
    with pytest.raises(BadDataError, match=r"t record 1 \(id 'bad'\): image .*corrupt\.jpg.* unreadable"):
        strict[1]


def test_fused_pixel_dicts_are_stacked_per_branch(tmp_path: Path, tokenizer) -> None:
    _write(tmp_path, [])
    conv = (("user", "<image>\nWhat?"), ("assistant", "red"))
    records = [Record("a", tmp_path / "img/ok.jpg", conv, "t", 0), Record("b", None, (("user", "hi"), ("assistant", "yo")), "t", 1)]
    fused = lambda img: {"dino": to_tensor(img), "siglip": to_tensor(img) * 2}  # noqa: E731
    ds = LlavaDataset(records, tokenizer, get_prompt_format("base", tokenizer), fused, max_length=64)
    batch = collate([ds[0], ds[1]], tokenizer.pad_token_id, pad_to_multiple_of=16)
    assert set(batch["pixel_values"]) == {"dino", "siglip"}
    assert batch["pixel_values"]["siglip"].shape == (2, 3, 8, 8)
    assert batch["input_ids"].shape[1] % 16 == 0
    assert batch["pixel_values"]["dino"][1].abs().sum() == 0


# the first record of LLaVA's blip_laion_cc_sbu_558k.json (as Prismatic's AlignDataset docstring quotes it)
ALIGN_558K = {"id": "004539375", "image": "00453/004539375.jpg",
              "conversations": [{"from": "human", "value": "Render a clear and concise summary of the photo.\n<image>"},
                                {"from": "gpt", "value": "select luxury furniture 3 - inch gel memory foam mattress "
                                                         "topper"}]}


def test_align_stage_is_bos_image_slots_caption_eos_with_the_human_prompt_discarded(tmp_path: Path,
                                                                                    compose_tiny) -> None:
    """Prismatic's AlignDataset: tokenizer(caption + eos) = BOS + caption + EOS, BOS ignored; the VLM puts the
    image slots right after BOS; finetune data of the same record go through the prompt format."""
    from ablate.models.vlm import build_vlm

    (tmp_path / "00453").mkdir()
    Image.new("RGB", (16, 16), "red").save(tmp_path / "00453" / "004539375.jpg")
    (tmp_path / "558k.json").write_text(json.dumps([ALIGN_558K]))
    records = read_records(tmp_path / "558k.json", tmp_path, source="558k")
    model = build_vlm(compose_tiny())
    tok = model.tokenizer
    caption = tok("select luxury furniture 3 - inch gel memory foam mattress topper", add_special_tokens=False)
    expected = [tok.bos_token_id, *caption["input_ids"], tok.eos_token_id]
    align = LlavaDataset(records, tok, model.prompt_format, model.image_transform, max_length=256, align=True)[0]
    assert align.input_ids.tolist() == expected
    assert align.labels.tolist() == [-100, *expected[1:]]
    finetune = LlavaDataset(records, tok, model.prompt_format, model.image_transform, max_length=256)[0]
    assert "Render a clear" in tok.decode(finetune.input_ids) and "Render" not in tok.decode(align.input_ids)
    batch = collate([align], tok.pad_token_id)
    _, attn, labels, _ = model.merge(batch["input_ids"], batch["attention_mask"], batch["labels"],
                                     batch["pixel_values"], batch["has_image"])
    slots = model.num_image_tokens
    assert labels[0].tolist() == [-100] * (1 + slots) + expected[1:] and attn.sum() == len(expected) + slots
