"""Every config file composes; every validation rule fails with one line naming key, value and allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablate.config import ALL_GROUPS, CONF_DIR, ConfigError
from ablate.design import compose
from ablate.registry import group_files

# Options that only compose together with another axis level (a valid combination).
COMPANIONS = {
    ("projector", "fused-mlp"): ["vision=dinosiglip-384"],
    ("vision", "tiny-patch-embed"): ["recipe=single-stage-full-ft"],
}
OPTIONS = sorted((g, o) for g in ALL_GROUPS for o in group_files(g))  # conf/ and the plug-ins' conf dirs


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}/{o}" for g, o in OPTIONS])
def test_every_config_file_composes(group: str, option: str) -> None:
    cfg = compose([f"{group}={option}", *COMPANIONS.get((group, option), [])])
    if "id" in cfg[group]:
        assert cfg[group].id == option, "a group file's id must equal its file name (the axis level)"


def test_config_files_cover_the_issue_levels() -> None:
    wanted = {
        "vision": {"clip-vit-l-336", "clip-vit-l-224", "siglip-so400m-384", "siglip-so400m-224", "dinov2-vit-l-224",
                   "in1k-vit-l-224", "dinosiglip-384", "dinosiglip-224", "dinoclip-336"},
        "image": {"letterbox", "resize-naive", "resize-crop"},
        "projector": {"linear", "mlp", "fused-mlp", "perceiver", "qformer"},
        "llm": {"vicuna-v15-7b", "vicuna-v15-13b", "llama2-7b", "llama2-13b", "llama2-chat-7b", "llama2-chat-13b",
                "mistral-v01-7b", "mistral-instruct-v01-7b", "phi-2"},
        "recipe": {"two-stage", "single-stage", "two-stage-full-ft", "single-stage-full-ft"},
        "data": {"llava-v15", "llava-v15-lvis4v", "llava-v15-lrv", "llava-v15-lvis4v-lrv", "llava-v15-multimodal-only",
                 "shapes"},
        "launcher": {"local", "slurm"},
    }
    have: dict[str, set[str]] = {}
    for g, o in OPTIONS:
        have.setdefault(g, set()).add(o)
    for group, levels in wanted.items():
        assert levels <= have[group], f"{group}: missing {sorted(levels - have[group])}"


def test_fused_backbone_width_is_the_sum_of_branches() -> None:
    from ablate.config import feature_width

    assert feature_width(compose(["vision=dinosiglip-384", "projector=fused-mlp"])) == 1024 + 1152
    assert feature_width(compose(["vision=clip-vit-l-336"])) == 1024


BAD = [
    (["vision=not-a-backbone"], "vision: invalid value 'not-a-backbone'; allowed: clip-vit-l-224"),
    (["projector=fused-mlp"], "projector: invalid value 'fused-mlp' for single backbone"),
    (["projector=perceiver", "projector.num_tokens=0"], "projector.num_tokens: invalid value 0"),
    (["projector.num_tokens=16"], "projector.num_tokens: invalid value 16; expected null for projector=mlp"),
    (["vision.image_size=448"], "vision.backbones[0].image_size: invalid value 336"),
    (["train.align.epochs=2"], "train.align.epochs: invalid value 2.0 for single-stage recipe=single-stage"),
    (["train.epochs=0"], "train.epochs: invalid value 0.0"),
    (["train.epochs=abc"], "train.epochs"),
    (["train.not_a_key=1"], "Key 'not_a_key' not in 'TrainConfig'"),
    (["train.finetune.global_batch=100"], "train.finetune.global_batch: invalid value 100; expected a multiple"),
    (["llm.prompt_format=alpaca"], "llm.prompt_format: invalid value 'alpaca'; allowed: base, vicuna-v1.5"),
    (["llm=phi-2", "llm.image_positions=rope-2d"], "llm.image_positions: invalid value 'rope-2d'; expected an LLM of family"),
    (["projector=qformer", "llm.image_positions=rope-2d"], "expected a projector that keeps the patch grid"),
    (["vision=tiny-patch-embed"], "recipe: invalid value 'single-stage' for vision='tiny-patch-embed'"),
    (["recipe.stages.0.trainable=[projector,decoder]"], "recipe.stages[0].trainable: invalid value 'decoder'"),
    (["train.precision=fp8"], "train.precision: invalid value 'fp8'; allowed: bf16, fp32"),
    (["eval.closed_set=guess"], "eval.closed_set: invalid value 'guess'"),
    (["data.on_bad_example=ignore"], "data.on_bad_example: invalid value 'ignore'; allowed: skip, fail"),
    (["launcher=nowhere"], "launcher: invalid value 'nowhere'; allowed: debug, local, slurm"),
    (["train.seed=1,2"], "expected one value, not a sweep"),
    (["runtime.dist_timeout_s=0"], "runtime.dist_timeout_s: invalid value 0"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD, ids=[" ".join(o) for o, _ in BAD])
def test_validation_errors_are_one_clear_line(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        compose(overrides)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_conf_dir_is_inside_the_repo() -> None:
    assert Path(__file__).resolve().parent.parent / "conf" == CONF_DIR


def test_random_init_with_a_path_is_an_error_not_a_silent_winner() -> None:
    with pytest.raises(ConfigError, match=r"^llm.random_init: invalid value \(set\) with llm.path='/models/lm' "
                       r"\(llm=tiny-llama\); expected one of them: random_init builds a random LM, path loads one "
                       r"\(add llm.random_init=null\)$"):
        compose(["llm=tiny-llama", "llm.path=/models/lm"])
    assert compose(["llm=tiny-llama", "llm.path=/models/lm", "llm.random_init=null"]).llm.random_init is None


def test_component_ids_come_from_the_registries() -> None:
    from ablate import registry

    with pytest.raises(ConfigError, match="^projector: invalid value 'mlp2'; allowed: linear, mlp, fused-mlp, "
                       "perceiver, qformer, gated-xattn$"):
        compose(["projector.id=mlp2"])
    with pytest.raises(ConfigError, match="^eval.benchmarks: invalid value 'mmmu'; allowed: vqav2, gqa, "):
        compose(["eval.benchmarks=[pope,mmmu]"])
    with pytest.raises(ConfigError, match="^llm.tokenizer: invalid value 'bpe'; allowed: synthetic-bpe$"):
        compose(["llm=tiny-llama", "llm.tokenizer=bpe"])
    assert registry.TOKENIZERS.origin("synthetic-bpe") == "ablate.shapes.plugin"
