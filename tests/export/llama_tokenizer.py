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
