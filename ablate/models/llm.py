"""The LLM backbone: tokenizers and HF causal LMs, from local weights or random init, never downloaded.

``build_tokenizer(llm_cfg)`` returns the tokenizer the data pipeline and the VLM share: from ``llm.path`` /
the local HF cache (``local_files_only``), or the in-process tokenizer that ``llm.tokenizer`` names (built
with no files, identical in every process).  A PAD token is added when missing (as Prismatic).

``build_llm(llm_cfg, tokenizer)`` returns the HF causal LM with its input/output embeddings resized to cover
the tokenizer, padded to a multiple of ``llm.pad_to_multiple_of`` (new rows drawn as the model's own init, not
transformers 5's mean-resizing: Prismatic ran transformers 4.38).  Weights are always float32 (the master
copy the optimizer updates), whatever dtype the checkpoint ships in; compute dtypes are the trainer's and the
evaluator's business (``ablate.train.strategy``).

Every named LM is specified as data (``llm.spec``: HF config names, ``conf/llm/*.yaml``), so
``llm_config(llm_cfg)`` builds its HF config with no weights or tokenizer (the meta-device build of
``ablate describe``), and ``check_spec`` compares the config shipped with real weights to it before they
load: a mismatch is a one-line :class:`SpecMismatchError` naming the LM, the field and both values.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from ablate.config import ConfigError
from ablate.models.prompts import IGNORE_INDEX
from ablate.registry import option_path

log = logging.getLogger(__name__)

PAD_TOKEN = "<pad>"
class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights are not on this machine (nothing is ever downloaded)."""


class SpecMismatchError(ConfigError):
    """The config shipped with a checkpoint disagrees with the spec of the ID it stands behind."""


# spec fields compared with the shipped HF config (extra keys are compared too)
SPEC_FIELDS = ("model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
               "num_key_value_heads", "vocab_size", "rope_theta", "max_position_embeddings", "tie_word_embeddings")
TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def weights_source(llm_cfg: Any) -> str:
    """Where the LM's weights/tokenizer come from: ``llm.path`` (wins) or ``llm.hf_id`` in the local cache."""
    if llm_cfg.path:
        if not Path(llm_cfg.path).exists():
            raise WeightsNotFoundError(f"llm.path: {llm_cfg.path!r} does not exist (llm={llm_cfg.id}); "
                                       "expected a local directory with config, weights and tokenizer")
        return str(llm_cfg.path)
    if llm_cfg.hf_id:
        return str(llm_cfg.hf_id)
    raise WeightsNotFoundError(f"llm={llm_cfg.id}: no llm.path or llm.hf_id to load from")


def _load_local(loader: Any, source: str, what: str, llm_id: str, **kwargs: Any) -> Any:
    try:
        return loader.from_pretrained(source, local_files_only=True, **kwargs)
    except (OSError, ValueError) as err:
        from huggingface_hub.constants import HF_HUB_CACHE

        raise WeightsNotFoundError(
            f"llm={llm_id}: {what} for {source!r} not found locally (looked in {source!r} as a path and in "
            f"the HF cache {HF_HUB_CACHE}); nothing is downloaded — set llm.path to a local copy ({err})"
        ) from None


def in_process_tokenizer(llm_cfg: Any) -> Any:
    """The tokenizer ``llm.tokenizer`` names in ``ablate.registry.TOKENIZERS`` (built in-process, no files)."""
    from ablate.registry import TOKENIZERS

    return TOKENIZERS.get(llm_cfg.tokenizer)()


def build_tokenizer(llm_cfg: Any) -> Any:
    """The tokenizer of ``llm_cfg`` with a PAD token (added when missing)."""
    if llm_cfg.tokenizer not in (None, ""):
        return in_process_tokenizer(llm_cfg)
    tokenizer = _load_local(AutoTokenizer, weights_source(llm_cfg), "tokenizer", llm_cfg.id)
    pad = _get(llm_cfg, "pad_token")
    if pad and tokenizer.pad_token != pad:  # Prismatic adds its PAD token whatever the tokenizer has
        tokenizer.add_special_tokens({"pad_token": pad})
    elif tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    return tokenizer


def _get(cfg: Any, key: str) -> Any:
    """``cfg.key`` or None (configs saved before the key existed, plain namespaces)."""
    return cfg.get(key) if hasattr(cfg, "get") else getattr(cfg, key, None)


def _plain(node: Any) -> dict[str, Any]:
    from omegaconf import DictConfig, OmegaConf

    return dict(OmegaConf.to_container(node, resolve=True)) if isinstance(node, DictConfig) else dict(node)


def padded_vocab_size(tokenizer: Any, multiple: int) -> int:
    return -(-len(tokenizer) // multiple) * multiple


def spec_vocab_size(llm_cfg: Any) -> int:
    """Embedding rows of an LM built from its spec alone: the shipped tokenizer's size (``spec.tokenizer_size``,
    default ``spec.vocab_size``) plus an added PAD token, rounded up to ``pad_to_multiple_of``."""
    spec = llm_cfg.spec
    size = int(_get(spec, "tokenizer_size") or spec.vocab_size) + (1 if _get(llm_cfg, "pad_token") else 0)
    return -(-size // int(llm_cfg.pad_to_multiple_of)) * int(llm_cfg.pad_to_multiple_of)


def llm_config(llm_cfg: Any, vocab_size: int | None = None, tokenizer: Any = None) -> Any:
    """The HF config of ``llm_cfg`` from ``random_init`` (random-init LMs) or ``spec`` (named LMs), with
    ``vocab_size`` rows (default: the tokenizer's padded size, else the spec's)."""
    if llm_cfg.random_init is not None:
        init = _plain(llm_cfg.random_init)
        model_type = init.pop("model_type", llm_cfg.family)
    elif _get(llm_cfg, "spec") is not None:
        spec = _plain(llm_cfg.spec)
        extra = dict(spec.pop("extra") or {})
        model_type = spec.pop("model_type")
        spec.pop("weights_dtype")
        spec.pop("tokenizer_size", None)
        init = {**spec, **extra}
    else:
        raise ConfigError(f"llm.spec: invalid value None for llm={llm_cfg.id}; expected the architecture of the LM "
                          "(conf/llm/*.yaml spec:) or llm.random_init")
    if vocab_size is None:
        vocab_size = padded_vocab_size(tokenizer, llm_cfg.pad_to_multiple_of) if tokenizer is not None \
            else spec_vocab_size(llm_cfg) if llm_cfg.random_init is None else int(init.get("vocab_size", 0))
    ids = {} if tokenizer is None else dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                            pad_token_id=tokenizer.pad_token_id)
    init.pop("vocab_size", None)
    return AutoConfig.for_model(model_type, **init, vocab_size=vocab_size, **ids)


def _config_value(config: Any, key: str) -> Any:
    value = getattr(config, key, None)
    if value is None and isinstance(getattr(config, "rope_parameters", None), dict):
        value = config.rope_parameters.get(key)
    if value is None and key == "num_key_value_heads":
        value = getattr(config, "num_attention_heads", None)
    return value


def check_spec(llm_cfg: Any, config: Any, source: str) -> None:
    """Raise :class:`SpecMismatchError` (one line: LM, field, both values) where the shipped ``config``
    disagrees with ``llm.spec``; no spec = nothing to check."""
    spec = _get(llm_cfg, "spec")
    if spec is None:
        return
    wanted = {k: spec[k] for k in SPEC_FIELDS}
    wanted.update(dict(_get(spec, "extra") or {}))
    for key, want in wanted.items():
        got = _config_value(config, key)
        # floats to float32 precision (GGUF stores rms_norm_eps 1e-5 as 9.99999975e-06)
        same = (got == want) if not isinstance(want, float) else got is not None and abs(float(got) - want) <= 1e-6 * abs(want)
        if not same:
            raise SpecMismatchError(f"llm={llm_cfg.id}: the weights at {source!r} have {key}={got!r}; the spec "
                                    f"({option_path('llm', llm_cfg.id)}) says {key}={want!r}")
    shipped = getattr(config, "dtype", None)
    shipped = str(shipped).removeprefix("torch.") if shipped is not None else None
    if shipped is not None and shipped != spec.weights_dtype:
        raise SpecMismatchError(f"llm={llm_cfg.id}: the weights at {source!r} have weights_dtype={shipped!r}; the "
                                f"spec ({option_path('llm', llm_cfg.id)}) says weights_dtype={spec.weights_dtype!r}")


def build_llm(llm_cfg: Any, tokenizer: Any, *, dtype: torch.dtype = torch.float32) -> Any:
    """The HF causal LM: random init from ``llm.random_init`` or local weights (their config checked against
    ``llm.spec`` first); float32 master weights whatever the checkpoint's dtype; embeddings resized to cover
    the tokenizer rounded up to ``llm.pad_to_multiple_of`` (as Prismatic, also when that shrinks them);
    ``pad_token_id`` set from the tokenizer."""
    vocab = padded_vocab_size(tokenizer, llm_cfg.pad_to_multiple_of)
    if llm_cfg.random_init is not None:
        model = AutoModelForCausalLM.from_config(llm_config(llm_cfg, vocab, tokenizer), dtype=dtype)
    else:
        source = weights_source(llm_cfg)
        shipped = _load_local(AutoConfig, source, "config", llm_cfg.id)
        check_spec(llm_cfg, shipped, source)
        model = _load_local(AutoModelForCausalLM, source, "causal-LM weights", llm_cfg.id, dtype=dtype)
        if model.get_input_embeddings().weight.shape[0] != vocab:
            model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=llm_cfg.pad_to_multiple_of,
                                          mean_resizing=False)
        model.config.pad_token_id = tokenizer.pad_token_id
    return model


def target_loss(llm: Any, labels: torch.Tensor, **inputs: Any) -> torch.Tensor:
    """HF's causal-LM loss (targets = ``labels`` shifted by one; float32 cross-entropy, mean over the targets
    that are not IGNORE_INDEX) with the LM head applied only at the positions that predict a target
    (``logits_to_keep`` as a boolean mask: transformers' ``slice_logits_to_keep``, which the llama, mistral
    and phi classes call; tests/models/test_specs.py checks every LM config): the logits of image, prompt and
    padding positions -- most of a batch, and at a 32K vocabulary most of a step's activation memory -- are
    never computed.  Same value and gradients as ``llm(**inputs, labels=labels).loss``."""
    targets = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
    keep = targets != IGNORE_INDEX
    logits = llm(**inputs, logits_to_keep=keep).logits
    return F.cross_entropy(logits.float(), targets[keep])
