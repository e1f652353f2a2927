"""The VLM: vision backbone -> projector -> image tokens inserted right after BOS of an HF causal LM.

``build_vlm(cfg)`` assembles the model from a composed config.  ``VLM.forward(batch)`` returns the mean loss
over assistant tokens (labels from the data pipeline; image slots get ``-100``).  Image tokens go in through
``inputs_embeds`` by one vectorized gather, for right-padded (training) and left-padded (generation) rows
alike; in a batch that mixes image and text-only rows, text rows get masked filler slots (at the end of a
right-padded row, at the start of a left-padded one).
``generate`` is batched greedy decoding with left padding and a KV cache, stopping at EOS; it computes
position ids itself so every ``llm.image_positions`` level decodes the same way.  ``score_options`` returns normalized
probabilities of closed-set options (option log-likelihood given the prompt, softmaxed over the options; for
single-token options this is Prismatic's option-token probability).  ``save_pretrained`` /
``from_pretrained`` round-trip the config, the tokenizer and all weights (safetensors), rebuilt in float32
whatever the saved dtype.  Inference (``generate``, ``score_options``) computes under ``inference_precision``
(``eval.precision``: bf16 autocast, as Prismatic evaluates, or fp32).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from torch import nn

from ablate.config import image_transform_id
from ablate.data.anyres import GRID_KEY
from ablate.data.transforms import build_image_transform
from ablate.models.llm import build_llm, build_tokenizer, target_loss
from ablate.models.positions import enable_positions, merged_positions, next_positions
from ablate.models.projector import build_projector, num_output_tokens
from ablate.models.prompts import IGNORE_INDEX, get_prompt_format
from ablate.models.tiles import SEPARATOR, add_separator, arrange
from ablate.models.vision import build_vision

Pixels = torch.Tensor | dict[str, torch.Tensor]
ImageInput = Image.Image | torch.Tensor | None

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
LLM_CONFIG_DIR = "llm-config"
TOKENIZER_DIR = "tokenizer"


def _select_rows(pixels: Pixels, rows: torch.Tensor) -> Pixels:
    if isinstance(pixels, dict):
        return {k: v[rows] for k, v in pixels.items()}
    return pixels[rows]


def _differ_in_last_token_only(options: list[list[int]]) -> bool:
    """Whether every option has the same tokens but the last (and so the same length, at least one)."""
    first = options[0]
    return len(first) >= 1 and all(len(o) == len(first) and o[:-1] == first[:-1] for o in options)


class VLM(nn.Module):
    def __init__(self, cfg: DictConfig, vision: nn.Module, projector: nn.Module, llm: nn.Module,
                 tokenizer: Any) -> None:
        super().__init__()
        self.cfg = cfg
        self.vision = vision
        self.projector = projector
        self.llm = llm
        self.tokenizer = tokenizer
        # a meta-device model (build_meta_vlm) has no tokenizer: formats that need one are left unbuilt
        needs_tokenizer = tokenizer is None and cfg.llm.prompt_format == "tokenizer"
        self.prompt_format = None if needs_tokenizer else get_prompt_format(cfg.llm.prompt_format, tokenizer)
        self.image_transform = build_image_transform(image_transform_id(cfg.image), cfg.vision, cfg.image.get("grids"))
        self.image_positions = str(cfg.llm.image_positions)
        self.num_image_tokens = num_output_tokens(cfg.projector, vision.num_patches)
        self.tiled = self.image_transform.tiling is not None  # anyres: tokens per image vary with its grid
        if self.tiled and not hasattr(projector, SEPARATOR):
            add_separator(projector, llm.get_input_embeddings().weight.shape[1])
        # the patch grid of the image tokens (None for resamplers: their tokens have no 2-D layout)
        self.image_grid = vision.grid if self.num_image_tokens == vision.num_patches and not self.tiled else None
        enable_positions(llm, self.image_positions)
        if hasattr(projector, "set_context"):  # gated-xattn: no image tokens, cross-attention inside the LM
            projector.attach(llm)
        evaluation = cfg.get("eval") if hasattr(cfg, "get") else None
        self.inference_precision = str((evaluation.get("precision") if evaluation is not None else None) or "bf16")

    @contextlib.contextmanager
    def inference_autocast(self) -> Iterator[None]:
        """bf16 autocast when ``inference_precision`` is bf16 (Prismatic's evaluation), else nothing."""
        if self.inference_precision == "bf16":
            with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16):
                yield
        else:
            yield

    @property
    def bridge(self) -> nn.Module | None:
        """The gated-xattn projector (``ablate.models.bridge``), else None (a property: no second module name)."""
        return self.projector if hasattr(self.projector, "set_context") else None

    @property
    def device(self) -> torch.device:
        return next(self.llm.parameters()).device

    # ------------------------------------------------------------------------------------------ merging
    def embed_images(self, pixels: Pixels) -> torch.Tensor:
        """Image tokens ``(B, T, D_lm)`` of a pixel batch (a bf16 frozen tower's features are cast to the
        projector's dtype; under autocast that is a no-op); ``anyres``: each image's tokens, then zeros."""
        return self.image_tokens(pixels)[0]

    def image_tokens(self, pixels: Pixels) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``embed_images`` and, for ``anyres``, each image's token count (else None: every image has ``T``)."""
        if self.tiled:
            return self._embed_tiles(pixels)
        feats = self.vision(pixels)
        weight = next(self.projector.parameters(), None)
        return self.projector(feats if weight is None else feats.to(weight.dtype)), None

    def _embed_tiles(self, pixels: Pixels) -> tuple[torch.Tensor, torch.Tensor]:
        """``anyres``: the images' real tiles (``1 + C·R`` each) through the tower and projector as one batch,
        laid out per image by ``ablate.models.tiles.arrange``."""
        grids = pixels[GRID_KEY]
        branches = {k: v for k, v in pixels.items() if k != GRID_KEY}
        first = next(iter(branches.values()))
        n_tiles = 1 + grids[:, 0] * grids[:, 1]
        real = torch.arange(first.shape[1], device=first.device).unsqueeze(0) < n_tiles.to(first.device).unsqueeze(1)
        tiles = {k: v[real] for k, v in branches.items()}
        feats = self.vision(tiles if self.vision.fused else next(iter(tiles.values())))
        weight = next(self.projector.parameters())
        tokens = self.projector(feats.to(weight.dtype))
        return arrange(tokens, grids, self.vision.grid)

    def merge(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None,
              pixels: Pixels | None, has_image: torch.Tensor | None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """``(inputs_embeds, attention_mask, labels, position_ids)`` with image tokens after each image
        row's first attended token (its BOS)."""
        embed = self.llm.get_input_embeddings()
        text = embed(input_ids)
        B, L = input_ids.shape
        if self.bridge is not None:
            return self._merge_bridge(text, attention_mask, labels, pixels, has_image)
        if pixels is None or has_image is None or not bool(has_image.any()):
            if pixels is not None and self.training and torch.is_grad_enabled():
                # an all-text training batch still passes one (blank) image through the image path with weight
                # 0 (LLaVA's dummy-image trick): a projector-only stage gets a zero gradient instead of a loss
                # without grad_fn, and every FSDP rank's backward covers the same parameters
                blank = self.embed_images(_select_rows(pixels, torch.zeros(1, dtype=torch.long, device=text.device)))
                text = text + 0.0 * blank.sum()
            image_index = torch.full_like(input_ids, -1)
            return text, attention_mask, labels, merged_positions(attention_mask, image_index, None, "1d")
        has_image = has_image.to(text.device).bool()
        feats, lengths = self.image_tokens(_select_rows(pixels, has_image.nonzero().squeeze(1)))
        T = feats.shape[1]
        images = text.new_zeros(B, T, text.shape[-1])
        images[has_image] = feats.to(text.dtype)
        n = torch.zeros(B, dtype=torch.long, device=text.device)  # image tokens per row (0: text-only)
        n[has_image] = T if lengths is None else lengths.to(text.device)
        first = attention_mask.long().argmax(dim=1)
        # each row holds its n image tokens after its BOS and T - n masked filler slots where they do not
        # separate a row's last token from what follows it: at the start when the row ends attended (left
        # padding, generation), else at the end
        fill_first = attention_mask[:, -1].bool()
        offset = torch.where(fill_first, T - n, torch.zeros_like(n)).unsqueeze(1)
        insert_at = (first + 1).unsqueeze(1)
        j = torch.arange(L + T, device=text.device).unsqueeze(0)
        k = j - offset  # the position within the row without its filler: text, image, text
        in_fill = (k < 0) | (k >= L + n.unsqueeze(1))
        rel = k - insert_at
        in_image = ~in_fill & (rel >= 0) & (rel < n.unsqueeze(1))
        text_src = torch.where(k < insert_at, k, k - n.unsqueeze(1)).clamp(0, L - 1)
        d = text.shape[-1]
        merged = torch.where(in_image.unsqueeze(-1),
                             images.gather(1, rel.clamp(0, T - 1).unsqueeze(-1).expand(-1, -1, d)),
                             text.gather(1, text_src.unsqueeze(-1).expand(-1, -1, d)))
        attn = torch.where(in_fill, False, in_image | attention_mask.gather(1, text_src).bool())
        attn = attn.to(attention_mask.dtype)
        if labels is not None:
            labels = torch.where(in_image | in_fill, IGNORE_INDEX, labels.gather(1, text_src))
        image_index = torch.where(in_image, rel, -1)
        positions = merged_positions(attn, image_index, self.image_grid, self.image_positions)
        return merged, attn, labels, positions

    def _merge_bridge(self, text: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None,
                      pixels: Pixels | None, has_image: torch.Tensor | None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The text alone (1-D positions); the image features become the bridge's cross-attention context.
        Every row with pixels passes through the image path (rows without an image are masked in the blocks),
        so every FSDP rank's backward covers the same parameters."""
        if pixels is None:
            self.bridge.set_context(None, None)
        else:
            rows = torch.ones(text.shape[0], dtype=torch.bool, device=text.device) if has_image is None else \
                has_image.to(text.device).bool()
            self.bridge.set_context(self.embed_images(pixels).to(text.dtype), rows)
        image_index = torch.full(attention_mask.shape, -1, device=attention_mask.device)
        return text, attention_mask, labels, merged_positions(attention_mask, image_index, None, "1d")

    # ------------------------------------------------------------------------------------------ training
    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """Mean cross-entropy over the assistant tokens of a collated batch."""
        device = self.device
        pixels = batch.get("pixel_values")
        if isinstance(pixels, dict):
            pixels = {k: v.to(device) for k, v in pixels.items()}
        elif pixels is not None:
            pixels = pixels.to(device)
        has_image = batch.get("has_image")
        embeds, attn, labels, positions = self.merge(
            batch["input_ids"].to(device), batch["attention_mask"].to(device), batch["labels"].to(device),
            pixels, None if has_image is None else has_image.to(device))
        # the LM head only where a target is predicted (same loss and gradients as HF's labels= loss)
        return target_loss(self.llm, labels, inputs_embeds=embeds, attention_mask=attn, position_ids=positions)

    # ------------------------------------------------------------------------------------------ inference
    def _pixels_of(self, images: Sequence[ImageInput] | None, batch: int) -> tuple[Pixels | None, torch.Tensor]:
        present = [im is not None for im in images] if images is not None else [False] * batch
        has_image = torch.tensor(present, dtype=torch.bool, device=self.device)
        if not any(present):
            return None, has_image
        kept = [im for im in images if im is not None]
        pixels = self.image_transform(kept)
        # rows without an image get their slot filled by a copy of the first image; merge() ignores them
        order = torch.cumsum(has_image.long(), 0).sub(1).clamp(min=0)
        pixels = _select_rows(pixels, order.cpu())
        if isinstance(pixels, dict):
            return {k: v.to(self.device) for k, v in pixels.items()}, has_image
        return pixels.to(self.device), has_image

    def _left_pad(self, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in sequences)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(sequences), width), pad, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for i, s in enumerate(sequences):
            ids[i, width - len(s):] = torch.tensor(s)
            mask[i, width - len(s):] = 1
        return ids.to(self.device), mask.to(self.device)

    def _prompt_ids(self, prompt: str) -> list[int]:
        bos = [] if self.tokenizer.bos_token_id is None else [self.tokenizer.bos_token_id]
        text = self.prompt_format.generation_prompt(prompt)
        return bos + self.tokenizer(text, add_special_tokens=False)["input_ids"]

    @torch.no_grad()
    def generate_ids(self, images: Sequence[ImageInput] | None, prompts: Sequence[str], *,
                     max_new_tokens: int = 128) -> list[list[int]]:
        """Greedy continuation token ids per prompt (EOS excluded), batched with left padding."""
        with self.inference_autocast():
            return self._generate_ids(images, prompts, max_new_tokens)

    def _generate_ids(self, images: Sequence[ImageInput] | None, prompts: Sequence[str],
                      max_new_tokens: int) -> list[list[int]]:
        ids, mask = self._left_pad([self._prompt_ids(p) for p in prompts])
        pixels, has_image = self._pixels_of(images, len(prompts))
        embeds, attn, _, positions = self.merge(ids, mask, None, pixels, has_image)
        out = self.llm(inputs_embeds=embeds, attention_mask=attn, position_ids=positions, use_cache=True,
                       logits_to_keep=1)
        cache = out.cache if hasattr(out, "cache") else out.past_key_values
        next_pos = next_positions(positions)
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        finished = torch.zeros(len(prompts), dtype=torch.bool, device=self.device)
        generated: list[torch.Tensor] = []
        for _ in range(max_new_tokens):
            token = out.logits[:, -1].argmax(dim=-1)
            token = torch.where(finished, torch.full_like(token, pad), token)
            generated.append(token)
            finished |= token == eos
            if bool(finished.all()):
                break
            attn = torch.cat([attn, torch.ones_like(attn[:, :1])], dim=1)
            step_pos = next_pos.unsqueeze(1)
            if positions.dim() == 3:
                step_pos = step_pos.unsqueeze(0).expand(positions.shape[0], -1, -1)
            out = self.llm(input_ids=token.unsqueeze(1), attention_mask=attn, position_ids=step_pos,
                           cache=cache, use_cache=True)
            cache = out.cache if hasattr(out, "cache") else out.past_key_values
            next_pos = next_pos + 1
        tokens = torch.stack(generated, dim=1).tolist() if generated else [[] for _ in prompts]
        result = []
        for row in tokens:
            result.append(row[:row.index(eos)] if eos in row else row)
        return result

    def generate(self, images: Sequence[ImageInput] | None, prompts: Sequence[str], *,
                 max_new_tokens: int = 128) -> list[str]:
        """Greedy answers (decoded, special tokens dropped, whitespace stripped), one per prompt."""
        rows = self.generate_ids(images, prompts, max_new_tokens=max_new_tokens)
        return [self.tokenizer.decode(r, skip_special_tokens=True).strip() for r in rows]

    @torch.no_grad()
    def score_options(self, images: Sequence[ImageInput] | None, prompts: Sequence[str],
                      options: Sequence[str] | Sequence[Sequence[str]]) -> torch.Tensor:
        """``(B, n_options)`` probabilities: each option's total log-likelihood after the prompt (as the
        assistant reply, same tokenization as training), softmaxed over the options of that example."""
        per_example = [list(options)] * len(prompts) if options and isinstance(options[0], str) else \
            [list(o) for o in options]
        n = len(per_example[0])
        if any(len(o) != n for o in per_example):
            raise ValueError(f"score_options: every example needs the same number of options, got "
                             f"{[len(o) for o in per_example]}")
        prefix = getattr(self.prompt_format, "option_prefix", " ")  # Prismatic's Phi-2 scores "Yes", not " Yes"
        option_ids = [[self.tokenizer(prefix + opt.strip(), add_special_tokens=False)["input_ids"] for opt in opts]
                      for opts in per_example]
        with self.inference_autocast():
            if all(_differ_in_last_token_only(opts) for opts in option_ids):
                return self._score_next_token(images, prompts, option_ids)
            return self._score_sequences(images, prompts, option_ids)

    def _score_next_token(self, images: Sequence[ImageInput] | None, prompts: Sequence[str],
                          option_ids: list[list[list[int]]]) -> torch.Tensor:
        """Options that differ only in their last token (yes/no, letters after a shared space token): one
        forward pass of each prompt + the shared tokens, the next-token distribution read at its last
        position.  The shared tokens' likelihood is the same for every option and cancels in the softmax, so
        these are `_score_sequences`'s numbers, n times cheaper."""
        ids, mask = self._left_pad([self._prompt_ids(p) + opts[0][:-1] for p, opts in zip(prompts, option_ids,
                                                                                            strict=True)])
        pixels, has_image = self._pixels_of(images, len(prompts))
        embeds, attn, _, positions = self.merge(ids, mask, None, pixels, has_image)
        logits = self.llm(inputs_embeds=embeds, attention_mask=attn, position_ids=positions,
                          logits_to_keep=1).logits[:, -1].float()
        targets = torch.tensor([[t[-1] for t in opts] for opts in option_ids], device=logits.device)
        return F.log_softmax(logits, dim=-1).gather(1, targets).softmax(dim=-1)

    def _score_sequences(self, images: Sequence[ImageInput] | None, prompts: Sequence[str],
                         option_ids: list[list[list[int]]]) -> torch.Tensor:
        """Any options: prompt + option as one sequence per (example, option), option tokens' log-likelihood
        summed; each image is preprocessed once and its pixels repeated for its option rows."""
        n = len(option_ids[0])
        sequences, targets = [], []
        for prompt, opts in zip(prompts, option_ids, strict=True):
            prefix = self._prompt_ids(prompt)
            for opt in opts:
                sequences.append(prefix + opt)
                targets.append(len(opt))
        ids, mask = self._left_pad(sequences)
        labels = torch.full_like(ids, IGNORE_INDEX)
        for i, t in enumerate(targets):
            labels[i, ids.shape[1] - t:] = ids[i, ids.shape[1] - t:]
        pixels, has_image = self._pixels_of(images, len(prompts))
        rows = torch.arange(len(prompts), device=has_image.device).repeat_interleave(n)
        pixels = None if pixels is None else _select_rows(pixels, rows)
        embeds, attn, labels, positions = self.merge(ids, mask, labels, pixels, has_image[rows])
        logits = self.llm(inputs_embeds=embeds, attention_mask=attn, position_ids=positions).logits.float()
        logp = F.log_softmax(logits[:, :-1], dim=-1)
        target = labels[:, 1:]
        picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        scores = (picked * (target != IGNORE_INDEX)).sum(-1).view(len(prompts), n)
        return scores.softmax(dim=-1)

    # ------------------------------------------------------------------------------------------ save/load
    def save_pretrained(self, directory: str | Path) -> None:
        from safetensors.torch import save_model

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_FILE).write_text(OmegaConf.to_yaml(self.cfg, resolve=True))
        self.llm.config.save_pretrained(directory / LLM_CONFIG_DIR)
        self.tokenizer.save_pretrained(directory / TOKENIZER_DIR)
        save_model(self, str(directory / WEIGHTS_FILE))
        (directory / "ablate-vlm.json").write_text(json.dumps({"format": 1, "weights": WEIGHTS_FILE}))

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device: str | torch.device = "cpu") -> VLM:
        from safetensors.torch import load_model
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        directory = Path(directory)
        for name in (CONFIG_FILE, WEIGHTS_FILE, LLM_CONFIG_DIR, TOKENIZER_DIR):
            if not (directory / name).exists():
                raise FileNotFoundError(f"{directory / name}: missing; expected a directory written by "
                                        "VLM.save_pretrained")
        cfg = OmegaConf.load(directory / CONFIG_FILE)
        tokenizer = AutoTokenizer.from_pretrained(directory / TOKENIZER_DIR, local_files_only=True)
        llm = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(directory / LLM_CONFIG_DIR),
                                               dtype=torch.float32)
        model = assemble(cfg, tokenizer, llm, load_vision_weights=False)
        load_model(model, str(directory / WEIGHTS_FILE), strict=True, device=str(device))
        return model.to(device)


def assemble(cfg: DictConfig, tokenizer: Any, llm: nn.Module, *, load_vision_weights: bool = True) -> VLM:
    vision = build_vision(cfg.vision, load_weights=load_vision_weights)
    projector = build_projector(cfg.projector, vision.embed_dim, llm.get_input_embeddings().weight.shape[1])
    return VLM(cfg, vision, projector, llm, tokenizer)


def build_vlm(cfg: DictConfig) -> VLM:
    """The VLM of a composed config: random-init parts or local weights (never downloaded)."""
    tokenizer = build_tokenizer(cfg.llm)
    return assemble(cfg, tokenizer, build_llm(cfg.llm, tokenizer))


def meta_llm(llm_cfg: Any) -> nn.Module:
    """The LM of ``llm_cfg`` on the meta device (float32, no storage) from its spec or ``random_init``; no
    weights or tokenizer files are read (an in-process tokenizer is built; an LM given only by
    ``llm.path`` is built from the config file there)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from ablate.models.llm import in_process_tokenizer, llm_config, padded_vocab_size, weights_source

    if llm_cfg.random_init is None and llm_cfg.get("spec") is None:
        config = AutoConfig.from_pretrained(weights_source(llm_cfg), local_files_only=True)
    else:
        tokenizer = in_process_tokenizer(llm_cfg) if llm_cfg.tokenizer else None
        vocab = padded_vocab_size(tokenizer, llm_cfg.pad_to_multiple_of) if tokenizer is not None else None
        config = llm_config(llm_cfg, vocab, tokenizer)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def build_meta_vlm(cfg: DictConfig, *, llm: nn.Module | None = None, vision: nn.Module | None = None) -> VLM:
    """A design point's VLM on the meta device: the real module tree (classes, tensor sizes, dtypes) with no storage
    and no weights or tokenizer read, in seconds even for 13B (``ablate describe``; FSDP unit planning).
    ``llm`` / ``vision`` reuse already-built meta components."""
    llm = llm if llm is not None else meta_llm(cfg.llm)
    with torch.device("meta"):
        vision = vision if vision is not None else build_vision(cfg.vision, load_weights=False)
        projector = build_projector(cfg.projector, vision.embed_dim, llm.get_input_embeddings().weight.shape[1])
    return VLM(cfg, vision, projector, llm, None)
