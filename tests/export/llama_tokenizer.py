"""A transformers ``LlamaTokenizer`` (SentencePiece-style BPE: Metaspace with ``prepend_scheme="first"``, as v5
builds it with ``legacy=False``) trained in-process on ablate's synthetic corpus, saved to a folder."""

from __future__ import annotations

import json
from pathlib import Path


def write_llama_tokenizer(directory: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaTokenizer

    from ablate.shapes.tokenizer import corpus

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    tok.train_from_iterator(corpus(), trainers.BpeTrainer(vocab_size=600, special_tokens=["<unk>", "<s>", "</s>"],
                                                                     show_progress=False))
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    llama = LlamaTokenizer(vocab=model["vocab"], merges=merges, legacy=False)
    llama.save_pretrained(directory)
    return directory


def save_random_lm(directory: Path, overrides: tuple[str, ...] = ("llm=tiny-llama",)) -> Path:
    """A random-init LM of ``llm=tiny-llama``'s architecture saved beside a tokenizer, so ``directory`` is a
    whole LM folder for ``llm.path`` (``llm.random_init`` and ``llm.path`` cannot both be set)."""
    import torch
    from transformers import AutoModelForCausalLM

    from ablate.design import compose
    from ablate.models.llm import llm_config

    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(llm_config(compose(list(overrides)).llm, vocab_size=640)).save_pretrained(directory)
    return directory
