"""Data mixes: sources under the data root, one error for all missing files, co-training off, synthetic
generation when the root is empty, step budgets, and a DataLoader over the mix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ablate.data.mixes import MissingDataError, build_dataset, build_mix, missing_files, steps_for


def test_shapes_mix_reads_align_and_finetune(world: Path, compose_tiny) -> None:
    cfg = compose_tiny(f"data.root={world}")
    align, finetune = build_mix(cfg, "align"), build_mix(cfg, "finetune")
    assert len(align.records) == len(json.loads((world / "align.json").read_text()))
    assert finetune.n_language_only > 0 and finetune.n_multimodal == len(align.records)
    assert finetune.stats.to_dict()["kept"] == {"shapes-instruct": len(finetune.records)}


def test_cotraining_off_drops_language_only_and_counts_it(world: Path, compose_tiny) -> None:
    cfg = compose_tiny(f"data.root={world}", "data.cotraining=false")
    mix = build_mix(cfg, "finetune")
    assert mix.n_language_only == 0
    with_text = build_mix(compose_tiny(f"data.root={world}"), "finetune")
    assert mix.stats.dropped_language_only == with_text.n_language_only > 0


def test_missing_files_are_listed_in_one_error(tmp_path: Path, compose_tiny) -> None:
    cfg = compose_tiny("data=llava-v15-lvis4v-lrv", f"data.root={tmp_path}")
    assert len(missing_files(cfg.data)) == 8  # 4 sources x (json, images)
    with pytest.raises(MissingDataError) as err:
        build_mix(cfg, "finetune")
    msg = str(err.value)
    assert "\n" not in msg and "6 missing" in msg
    for name in ("llava-v15-665k.json", "lvis-instruct4v-220k.json", "lrv-instruct-343k.images"):
        assert name in msg


def test_building_a_mix_never_generates_data(tmp_path: Path, compose_tiny) -> None:
    root = tmp_path / "fresh"
    cfg = compose_tiny(f"data.root={root}")
    with pytest.raises(MissingDataError, match="shapes-align.json"):
        build_mix(cfg, "align")
    assert not root.exists() and not list(tmp_path.iterdir())


def test_steps_for_fractional_epochs() -> None:
    assert steps_for(665_000, 128, 1.0) == 5196
    assert steps_for(1000, 128, 1.25) == 10  # ceil(1.25 * 8)
    assert steps_for(1000, 128, 1.5) == 12
    assert steps_for(10, 128, 0.1) == 1
    assert steps_for(1000, 128, 3.0, max_steps=5) == 5
    with pytest.raises(ValueError, match="positive"):
        steps_for(0, 128, 1.0)


def test_dataloader_over_the_mix_gives_single_modality_batches(world: Path, compose_tiny) -> None:
    import torch
    from torch.utils.data import DataLoader

    from ablate.data.llava import Collator, ModalityLengthSampler
    from ablate.models.llm import build_tokenizer
    from ablate.models.prompts import get_prompt_format

    cfg = compose_tiny(f"data.root={world}")
    tok = build_tokenizer(cfg.llm)
    ds = build_dataset(cfg, "finetune", tok, get_prompt_format(cfg.llm.prompt_format, tok),
                       lambda img: torch.zeros(3, 4, 4))
    sampler = ModalityLengthSampler(ds.lengths, ds.is_multimodal, per_device_batch=8, seed=0)
    loader = DataLoader(ds, batch_size=8, sampler=sampler, collate_fn=Collator(tok.pad_token_id))
    batches = list(loader)
    assert len(batches) == sampler.batches_per_epoch
    assert all(len(set(b["has_image"].tolist())) == 1 for b in batches)
    assert {False, True} == {bool(b["has_image"][0]) for b in batches}
