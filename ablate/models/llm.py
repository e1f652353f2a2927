"""The LLM backbone: tokenizers and HF causal LMs, from local weights or random init, never downloaded.

``build_tokenizer(llm_cfg)`` returns the tokenizer the data pipeline and the VLM share: from ``llm.path`` /
the local HF cache (``local_files_only``), or ``synthetic-bpe``, a byte-level BPE trained in-process on a
fixed built-in corpus of the synthetic shapes world (identical in every process, so data workers, trainer
ranks and evaluators agree on ids without any file).  A PAD token is added when missing (as Prismatic).

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

import functools
import logging
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from ablate.config import ConfigError

log = logging.getLogger(__name__)

PAD_TOKEN = "<pad>"
SYNTHETIC_BPE = "synthetic-bpe"
SYNTHETIC_VOCAB_SIZE = 1024
SYNTHETIC_SPECIALS = ("<s>", "</s>", PAD_TOKEN, "<unk>")
# A Vicuna-style chat template so `prompt_format=tokenizer` also works with the synthetic tokenizer.
SYNTHETIC_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}USER: {{ m['content'] }} ASSISTANT:"
    "{% else %} {{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights are not on this machine (nothing is ever downloaded)."""


class SpecMismatchError(ConfigError):
    """The config shipped with a checkpoint disagrees with the spec of the ID it stands behind."""


# spec fields compared with the shipped HF config (extra keys are compared too)
SPEC_FIELDS = ("model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
               "num_key_value_heads", "vocab_size", "rope_theta", "max_position_embeddings", "tie_word_embeddings")
TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def _synthetic_corpus() -> list[str]:
    """The fixed training text of the synthetic tokenizer: the shapes world's words and prompt scaffolding."""
    colours = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black", "gray", "grey", "pink",
               "brown", "cyan", "magenta"]
    shapes = ["circle", "square", "triangle", "rectangle", "star", "ellipse", "hexagon", "diamond", "cross",
              "shape", "shapes", "object", "objects"]
    numbers = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
               "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
               "twenty"]
    spatial = ["left", "right", "above", "below", "top", "bottom", "center", "centre", "middle", "next to",
               "corner", "edge", "inside", "outside", "behind", "in front of", "near", "far", "on", "under",
               "between", "upper", "lower", "small", "large", "big", "tiny"]
    scaffolding = [
        "In:", "Out:", "USER:", "ASSISTANT:", "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>", "<image>",
        "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
        "detailed, and polite answers to the user's questions.",
        "Answer the question using a single word or phrase.", "Answer with the option's letter from the given "
        "choices directly.", "Please provide the bounding box coordinate of the region this sentence describes:",
        "Is there a", "in the image?", "Please answer yes or no.", "How many", "are there?", "What color is the",
        "What colour is the", "Where is the", "Which shape is", "Describe the image.", "The image shows",
        "There is a", "There are", "Is the statement true or false?", "True", "False", "yes", "no", "Yes", "No",
        "A", "B", "C", "D", "answer", "question", "image", "picture", "of", "the", "a", "an", "and", "is",
        "are", "with", "to", "what", "which", "how", "many",
    ]
    lines = list(scaffolding)
    for i, colour in enumerate(colours):
        for j, shape in enumerate(shapes):
            where = spatial[(i + j) % len(spatial)]
            count = numbers[(i * 3 + j) % len(numbers)]
            lines.append(f"There is a {colour} {shape} at the {where} of the image.")
            lines.append(f"How many {colour} {shape}s are there? {count} ({(i + j) % 21})")
            lines.append(f"Is there a {colour} {shape} {where} the {shapes[(j + 1) % len(shapes)]}? "
                         f"{'yes' if (i + j) % 2 else 'no'}")
    lines.extend(f"{n} {w}" for n, w in enumerate(numbers))
    for k in range(200):  # box coordinate strings as the referring-expression tasks print them
        a, b, c, d = ((k * 37 + m * 13) % 100 for m in range(4))
        lines.append(f"[0.{a:02d}, 0.{b:02d}, 0.{c:02d}, 0.{d:02d}]")
    lines.extend(" ".join(spatial[i:i + 5]) for i in range(len(spatial)))
    return lines


@functools.cache
def _synthetic_tokenizer_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=SYNTHETIC_VOCAB_SIZE, min_frequency=2, show_progress=False,
                                  special_tokens=list(SYNTHETIC_SPECIALS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_synthetic_corpus(), trainer=trainer)
    bos_id = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", bos_id)])
    return tok.to_str()


def synthetic_tokenizer() -> PreTrainedTokenizerFast:
    """The deterministic in-process byte-level BPE (BOS ``<s>``, EOS ``</s>``, PAD ``<pad>``)."""
    from tokenizers import Tokenizer

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(_synthetic_tokenizer_json()),
                                        bos_token="<s>", eos_token="</s>", pad_token=PAD_TOKEN,
                                        unk_token="<unk>", padding_side="right")
    tokenizer.chat_template = SYNTHETIC_CHAT_TEMPLATE
    return tokenizer


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


def build_tokenizer(llm_cfg: Any) -> Any:
    """The tokenizer of ``llm_cfg`` with a PAD token (added when missing)."""
    if llm_cfg.tokenizer == SYNTHETIC_BPE:
        return synthetic_tokenizer()
    if llm_cfg.tokenizer not in (None, ""):
        raise ValueError(f"llm.tokenizer: invalid value {llm_cfg.tokenizer!r}; allowed: {SYNTHETIC_BPE}, null "
                         "(= the tokenizer saved with the weights)")
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
    """The HF config of ``llm_cfg`` from ``random_init`` (tiny LMs) or ``spec`` (named LMs), with
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
                                    f"(conf/llm/{llm_cfg.id}.yaml) says {key}={want!r}")
    shipped = getattr(config, "dtype", None)
    shipped = str(shipped).removeprefix("torch.") if shipped is not None else None
    if shipped is not None and shipped != spec.weights_dtype:
        raise SpecMismatchError(f"llm={llm_cfg.id}: the weights at {source!r} have weights_dtype={shipped!r}; the "
                                f"spec (conf/llm/{llm_cfg.id}.yaml) says weights_dtype={spec.weights_dtype!r}")


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
