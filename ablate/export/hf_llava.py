"""``ablate export RUN --format hf-llava``: a trained design point as a transformers Llava folder.

Why it exists: the field's harnesses (lmms-eval ``llava_hf``, VLMEvalKit, vLLM) load
``LlavaForConditionalGeneration`` + ``AutoProcessor`` folders; this writes one whose greedy generations equal
ablate's, token for token.  How each part maps (docs/export.md has the details and the deviations):

- vision tower: :mod:`ablate.export.towers` (the kept blocks only; ``vision_feature_layer=-1``; ``default``
  selection drops CLIP's CLS token, ``full`` keeps SigLIP's patches, exactly as ablate);
- projector: ``mlp`` (Linear-GELU-Linear) is Llava's ``multi_modal_projector`` itself; ``linear`` is written
  as ``linear_1`` = the linear map, ``projector_hidden_act="linear"`` (identity) and ``linear_2`` = the
  identity matrix with zero bias, which is exact (one extra LM-width square matrix);
- LM: the causal LM's base model and ``lm_head`` (bias-free: LMs with a biased or scaled head cannot be
  expressed); a PEFT LoRA wrapper is merged first; ``<image>`` is added to the tokenizer in a padded
  vocabulary slot (or a new row whose ``lm_head`` weights duplicate the PAD row, so greedy argmax, which
  takes the first of equal maxima, never picks it where ablate would not);
- image processing: ``LlavaImageProcessor`` (torchvision backend, bicubic + antialias as ablate):
  resize-naive = resize to S x S; letterbox = its ``do_pad`` (pad to a centred square with the mean colour
  ``int(mean * 255)``, LLaVA's expand2square) then resize; resize-crop = shortest edge S + centre crop;
- prompt: :mod:`ablate.export.templates`.

Before writing, the export checks that the processor's token ids for probe prompts equal ablate's
``[BOS] + image tokens + prompt`` ids and (unless ``verify=False``) that the Llava model's logits equal
ablate's on a probe image, so a silent mismatch cannot leave the machine.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from ablate.export.towers import ExportError, Tower, Unsupported, convert_tower
from ablate.rundir import publish_folder, temp_folder

log = logging.getLogger(__name__)

FORMAT = "hf-llava"
SUPPORTS = ("one CLIP or SigLIP tower (open_clip CLIP, open_clip/timm SigLIP, hf-clip, hf-siglip), projector "
            "linear or mlp (gelu-mlp), llm.image_positions=1d, any HF causal LM with a bias-free lm_head")
PROJECTORS = {"mlp": "gelu", "linear": "linear"}  # ablate projector id -> Llava projector_hidden_act
IMAGE_TOKEN = "<image>"
PROBE_PROMPTS = ("What colour is the shape?", "How many  objects are there?\nAnswer with one word.",
                 "<image>\nIs there a red circle in the image? Please answer yes or no.")


def _unsupported(axis: str, level: Any, why: str) -> Unsupported:
    return Unsupported(f"export {FORMAT}: {axis}={level} ({why}) cannot be expressed; {FORMAT} supports {SUPPORTS}")


def check_expressible(cfg: Any) -> None:
    """Reject, from the config alone, the axis levels Llava cannot express (one-line :class:`Unsupported`)."""
    vision = cfg.vision
    if len(vision.backbones) != 1:
        raise _unsupported("vision", vision.id, f"a fused tower of {len(vision.backbones)} backbones")
    b = vision.backbones[0]
    if b.family == "patch-embed":
        raise _unsupported("vision", vision.id, "a patch embedding, not a ViT tower")
    if b.family not in ("open_clip", "timm", "hf-clip", "hf-siglip"):
        raise _unsupported("vision", vision.id, f"family {b.family}")
    if str(cfg.projector.id) not in PROJECTORS:
        kind = "a resampler" if cfg.projector.get("num_tokens") else "not Linear-GELU-Linear"
        raise _unsupported("projector", cfg.projector.id, kind)
    if str(cfg.llm.get("image_positions", "1d")) != "1d":
        raise _unsupported("llm.image_positions", cfg.llm.image_positions, "2-D positions of image tokens")


# ----------------------------------------------------------------------------------------------- LM parts
def _merged_llm(llm: nn.Module) -> nn.Module:
    """The causal LM with any PEFT LoRA adapters merged into its weights."""
    if hasattr(llm, "merge_and_unload"):
        return llm.merge_and_unload()
    leftover = [n for n, _ in llm.named_parameters() if "lora_" in n]
    if leftover:
        raise Unsupported(f"export {FORMAT}: LM parameters {leftover[:2]} look like LoRA adapters but the LM is not a "
                          "PEFT model that can merge them; expected peft's merge_and_unload")
    return llm


def _lm_head(llm: nn.Module, llm_id: str) -> nn.Linear:
    head = llm.get_output_embeddings()
    if not isinstance(head, nn.Linear) or head.bias is not None:
        raise _unsupported("llm", llm_id, "its lm_head has a bias or is not a Linear, Llava's lm_head is a bias-free Linear")
    for attr in ("final_logit_softcapping", "logit_scale", "logits_scaling"):
        if getattr(llm.config, attr, None) not in (None, 1, 1.0):
            raise _unsupported("llm", llm_id, f"its logits are post-processed ({attr})")
    return head


def _match_ablate_tokenization(tokenizer: Any) -> None:
    """Make a (copied) tokenizer give, for ``<image>`` + prompt, ablate's ids: BOS + image + the prompt tokenized
    alone.  Two tokenizer settings differ from that and are changed (they only matter at those two places):

    - a tokenizer that does not add BOS itself (ablate always prepends it) gets ``add_bos_token=True``, one
      that adds EOS gets ``add_eos_token=False``;
    - a SentencePiece-style Metaspace pre-tokenizer with ``prepend_scheme="first"`` (transformers 5's
      ``LlamaTokenizer`` with ``legacy=False``) gives the text after ``<image>`` no leading ``▁``, while ablate
      tokenizes the prompt on its own and gets one; ``"always"`` (``legacy=True``) prepends it to the text after
      a special token too, and is the same as ``"first"`` on text without special tokens.
    """
    from tokenizers import pre_tokenizers

    backend = getattr(tokenizer, "backend_tokenizer", None)
    pre = getattr(backend, "pre_tokenizer", None)
    if isinstance(pre, pre_tokenizers.Metaspace) and pre.prepend_scheme == "first":
        backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement=pre.replacement, prepend_scheme="always",
                                                         split=pre.split)
        tokenizer.init_kwargs["legacy"] = True  # LlamaTokenizer rebuilds its pre-tokenizer from legacy on load
        if hasattr(tokenizer, "legacy"):
            tokenizer.legacy = True
    probe = tokenizer("a")["input_ids"]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if bos is not None and probe[:1] != [bos] and hasattr(type(tokenizer), "add_bos_token"):
        tokenizer.add_bos_token = True
        tokenizer.init_kwargs["add_bos_token"] = True
    if eos is not None and probe[-1:] == [eos] and hasattr(type(tokenizer), "add_eos_token"):
        tokenizer.add_eos_token = False
        tokenizer.init_kwargs["add_eos_token"] = False


def _add_image_token(tokenizer: Any) -> tuple[Any, int]:
    """A copy of the tokenizer with ``<image>`` as a special token and ablate's BOS / prefix-space behaviour
    (:func:`_match_ablate_tokenization`); the token's id."""
    from tokenizers import AddedToken

    tokenizer = copy.deepcopy(tokenizer)
    _match_ablate_tokenization(tokenizer)
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_tokens([AddedToken(IMAGE_TOKEN, special=True, normalized=False)], special_tokens=True)
    return tokenizer, int(tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))


def _grown(weight: torch.Tensor, rows: int, fill_row: int | None) -> torch.Tensor:
    if weight.shape[0] >= rows:
        return weight
    extra = weight[fill_row].expand(rows - weight.shape[0], -1) if fill_row is not None else \
        weight.new_zeros(rows - weight.shape[0], weight.shape[1])
    return torch.cat([weight, extra.clone()])


# ------------------------------------------------------------------------------------------- processor
def image_processor_kwargs(image_id: str, b: Any, size: int) -> dict[str, Any]:
    """``LlavaImageProcessor`` settings that reproduce ablate's ``image_id`` transform for backbone ``b``."""
    from transformers.image_utils import PILImageResampling

    common = dict(resample=PILImageResampling.BICUBIC, image_mean=[float(m) for m in b.mean],
                  image_std=[float(s) for s in b.std], do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                  do_convert_rgb=True, crop_size={"height": size, "width": size})
    square = {"height": size, "width": size}
    if image_id == "resize-naive":
        return dict(common, do_resize=True, size=square, do_center_crop=False, do_pad=False)
    if image_id == "letterbox":
        return dict(common, do_resize=True, size=square, do_center_crop=False, do_pad=True)
    if image_id == "resize-crop":
        return dict(common, do_resize=True, size={"shortest_edge": size}, do_center_crop=True, do_pad=False)
    raise _unsupported("image", image_id, "no LlavaImageProcessor equivalent")


def build_processor(vlm: Any, tower: Tower, tokenizer: Any) -> Any:
    from transformers import LlavaImageProcessor, LlavaProcessor

    from ablate.export.templates import chat_template

    cfg = vlm.cfg
    b = cfg.vision.backbones[0]
    image_processor = LlavaImageProcessor(**image_processor_kwargs(str(cfg.image.id), b, int(cfg.vision.image_size)))
    return LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=int(tower.config.patch_size),
                          vision_feature_select_strategy=_strategy(tower), chat_template=chat_template(vlm.prompt_format),
                          image_token=IMAGE_TOKEN, num_additional_image_tokens=tower.num_prefix_tokens)


def _strategy(tower: Tower) -> str:
    return "default" if tower.num_prefix_tokens == 1 else "full"


def user_message(prompt: str, image: bool) -> list[dict[str, Any]]:
    """The HF chat message of one user prompt (with an image item first when there is an image)."""
    content: list[dict[str, Any]] = [{"type": "image"}] if image else []
    return [{"role": "user", "content": [*content, {"type": "text", "text": prompt}]}]


# ---------------------------------------------------------------------------------------------- model
def build_llava(vlm: Any) -> tuple[Any, Any]:
    """``(LlavaForConditionalGeneration, LlavaProcessor)`` in memory, weights equal to ``vlm``'s."""
    from transformers import GenerationConfig, LlavaConfig, LlavaForConditionalGeneration
    from transformers.initialization import no_init_weights

    cfg = vlm.cfg
    check_expressible(cfg)
    b = cfg.vision.backbones[0]
    branch = next(iter(vlm.vision.branches.values()))
    try:
        tower = convert_tower(branch, b, f"{b.family} {b.arch}")
    except Unsupported as exc:
        raise _unsupported("vision", cfg.vision.id, str(exc)) from None
    llm = _merged_llm(vlm.llm)
    head = _lm_head(llm, str(cfg.llm.id))
    base = getattr(llm, llm.base_model_prefix)
    tokenizer, image_id = _add_image_token(vlm.tokenizer)
    vocab = max(int(head.weight.shape[0]), image_id + 1)
    if vocab > head.weight.shape[0]:
        multiple = int(cfg.llm.get("pad_to_multiple_of", 1) or 1)
        vocab = -(-vocab // multiple) * multiple
    text_config = copy.deepcopy(llm.config)
    text_config.vocab_size = vocab
    n_tokens = int(vlm.num_image_tokens)
    config = LlavaConfig(vision_config=tower.config.to_dict(), text_config=text_config.to_dict(),
                         image_token_index=image_id, image_seq_length=n_tokens,
                         projector_hidden_act=PROJECTORS[str(cfg.projector.id)],
                         vision_feature_select_strategy=_strategy(tower), vision_feature_layer=-1,
                         multimodal_projector_bias=True,
                         tie_word_embeddings=bool(getattr(llm.config, "tie_word_embeddings", False)))
    with no_init_weights():  # every weight is overwritten below (a 7B LM need not be random-initialized first)
        model = LlavaForConditionalGeneration(config).eval()
    _load(model.model.vision_tower, tower.state, allowed_missing=("post_layernorm", "head."), what="vision tower")
    with torch.no_grad():  # unused by Llava (pooled output only; ablate pruned it): identity affine, not garbage
        norm = getattr(model.model.vision_tower, "post_layernorm", None)
        if norm is not None and "post_layernorm.weight" not in tower.state:
            norm.weight.fill_(1.0)
            norm.bias.zero_()
    _load_projector(model.model.multi_modal_projector, vlm.projector, str(cfg.projector.id))
    lm_state = dict(base.state_dict())
    embed_key = _embed_key(base)
    lm_state[embed_key] = _grown(lm_state[embed_key], vocab, None)
    _load(model.model.language_model, lm_state, allowed_missing=(), what="language model")
    with torch.no_grad():
        model.lm_head.weight.copy_(_grown(head.weight.detach(), vocab, tokenizer.pad_token_id))
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, do_sample=False)
    return model, build_processor(vlm, tower, tokenizer)


def _embed_key(base: nn.Module) -> str:
    embed = base.get_input_embeddings()
    return next(f"{n}.weight" for n, m in base.named_modules() if m is embed)


def _load(module: nn.Module, state: dict[str, torch.Tensor], *, allowed_missing: tuple[str, ...], what: str) -> None:
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(allowed_missing)]
    if missing or unexpected:
        raise ExportError(f"export {FORMAT}: {what} weights do not fit: missing {missing[:5]}, unexpected "
                           f"{unexpected[:5]}")


def _load_projector(target: nn.Module, projector: nn.Module, projector_id: str) -> None:
    with torch.no_grad():
        if projector_id == "mlp":
            first, second = projector[0], projector[2]
            target.linear_1.weight.copy_(first.weight)
            target.linear_1.bias.copy_(first.bias)
            target.linear_2.weight.copy_(second.weight)
            target.linear_2.bias.copy_(second.bias)
        else:  # linear: linear_1 is the map; identity activation; linear_2 = I (exact: 1*x + 0s)
            target.linear_1.weight.copy_(projector.weight)
            target.linear_1.bias.copy_(projector.bias)
            target.linear_2.weight.copy_(torch.eye(target.linear_2.weight.shape[0]))
            target.linear_2.bias.zero_()


# -------------------------------------------------------------------------------------------- checks
def check_tokens(vlm: Any, processor: Any, image_token_id: int) -> None:
    """The processor's ids for probe prompts (with and without an image) equal ablate's sequence."""
    probe = Image.new("RGB", (int(vlm.cfg.vision.image_size),) * 2, (40, 90, 200))
    for prompt in PROBE_PROMPTS:
        for with_image in (True, False):
            text = processor.apply_chat_template(user_message(prompt, with_image), add_generation_prompt=True)
            got = processor(images=[probe] if with_image else None, text=text)["input_ids"][0]
            ids = vlm._prompt_ids(prompt)
            expected = ids[:1] + [image_token_id] * int(vlm.num_image_tokens) + ids[1:] if with_image else ids
            if list(got) != expected:
                raise Unsupported(f"export {FORMAT}: llm.prompt_format={vlm.cfg.llm.prompt_format}: the exported chat "
                                  f"template + tokenizer give {len(got)} ids for probe {prompt!r}"
                                  f"{' with an image' if with_image else ''}, ablate {len(expected)} (first difference "
                                  f"at {next((i for i, (a, c) in enumerate(zip(got, expected, strict=False)) if a != c), 'end')})")


@torch.no_grad()
def check_logits(vlm: Any, model: Any, processor: Any, *, atol: float = 1e-4) -> float:
    """Llava's logits equal ablate's on a probe image + prompt, both fed ablate's pixels; the largest difference."""
    side = int(vlm.cfg.vision.image_size)
    probe = Image.radial_gradient("L").resize((side + 7, side)).convert("RGB")
    prompt = PROBE_PROMPTS[0]
    ids, mask = vlm._left_pad([vlm._prompt_ids(prompt)])
    pixels, has_image = vlm._pixels_of([probe], 1)
    embeds, attn, _, positions = vlm.merge(ids, mask, None, pixels, has_image)
    ours = vlm.llm(inputs_embeds=embeds, attention_mask=attn, position_ids=positions).logits.float()
    text = processor.apply_chat_template(user_message(prompt, True), add_generation_prompt=True)
    inputs = processor(images=[probe], text=text, return_tensors="pt")
    inputs["pixel_values"] = pixels  # the model is checked here; the pixels have their own mapping (and caveat)
    theirs = model(**inputs).logits.float()[..., :ours.shape[-1]]
    diff = float((ours - theirs).abs().max())
    if not diff <= atol * max(1.0, float(ours.abs().max())):
        raise ExportError(f"export {FORMAT}: the Llava model's logits differ from ablate's by {diff:.3g} on a probe "
                           f"(tolerance {atol:g}); not writing a model that generates differently")
    return diff


# --------------------------------------------------------------------------------------------- export
def _stored_dtype(model_dir: Path) -> str:
    """The safetensors dtype (``F32``, ``BF16``, ...) of the LM weights the run saved."""
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as f:
        key = next((k for k in f.keys() if k.startswith("llm.")), None)  # noqa: SIM118 (safe_open: no __iter__)
        return str(f.get_slice(key).get_dtype()) if key else "F32"


_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16,
           "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def check_out_dir(run_dir: Path, out: Path) -> None:
    """``out`` may be new, empty or an earlier hf-llava export (it is replaced); anything else is refused."""
    out_r, run_r = out.resolve(), run_dir.resolve()
    if out_r == run_r or run_r.is_relative_to(out_r) or out_r.is_relative_to(run_r):
        raise ExportError(f"export {FORMAT}: --out {out}: overlaps the run directory {run_dir}; expected a folder "
                          "outside it")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        config = out / "config.json"
        try:
            earlier = json.loads(config.read_text()).get("model_type") == "llava" and (out / "README.md").is_file()
        except (OSError, ValueError):
            earlier = False
        if not earlier:
            raise ExportError(f"export {FORMAT}: --out {out}: exists and is not an earlier hf-llava export (no llava "
                              "config.json + README.md); expected a new or empty folder (nothing was deleted)")


def export_hf_llava(run_dir: Path, out: Path, *, dtype: str = "auto", verify: bool = True) -> Path:
    """Write ``out`` (a Llava folder + README.md model card) from the trained model of ``run_dir``."""
    from omegaconf import OmegaConf

    from ablate.export.card import model_card
    from ablate.models.vlm import CONFIG_FILE, VLM

    check_out_dir(run_dir, out)
    model_dir = run_dir / "model"
    if not (model_dir / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{model_dir}: no trained model (expected {model_dir / CONFIG_FILE}, written when the "
                                "run finishes training)")
    check_expressible(OmegaConf.load(model_dir / CONFIG_FILE))  # before loading any weights
    vlm = VLM.from_pretrained(model_dir).eval()
    model, processor = build_llava(vlm)
    check_tokens(vlm, processor, model.config.image_token_index)
    diff = check_logits(vlm, model, processor) if verify else None
    if str(vlm.cfg.image.id) == "resize-crop":
        log.warning("export %s: image=resize-crop: transformers centre-crops at floor((L - S) / 2), ablate (torchvision, "
                    "as Prismatic/timm) at round((L - S) / 2); images whose resized long side L has (L - S) %% 4 == 3 "
                    "are cropped one pixel nearer the top/left (docs/export.md)", FORMAT)
    target = _DTYPES[_stored_dtype(model_dir) if dtype == "auto" else dtype]
    tmp = temp_folder(out)
    model.to(target).save_pretrained(tmp)
    processor.save_pretrained(tmp)
    (tmp / "README.md").write_text(model_card(run_dir, vlm.cfg, model.config, dtype=str(target).removeprefix("torch."),
                                              logits_diff=diff))
    return publish_folder(tmp, out)


def cli_export(args: Any) -> int:
    """``ablate export RUN --format hf-llava --out DIR``."""
    import sys

    run_dir = Path(args.run)
    out = Path(args.out)
    try:
        export_hf_llava(run_dir, out, dtype=args.dtype, verify=not args.no_verify)
    except (ExportError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"exported {run_dir} as {FORMAT} to {out} (load with LlavaForConditionalGeneration.from_pretrained("
          f"{json.dumps(str(out))}) and AutoProcessor.from_pretrained)")
    return 0
