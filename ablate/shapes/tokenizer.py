"""The shapes world's tokenizer (``llm.tokenizer: synthetic-bpe``): a byte-level BPE trained in-process on a
fixed built-in corpus of the shapes world's words and prompt scaffolding, identical in every process, so data
workers, trainer ranks and evaluators agree on ids without any file."""

from __future__ import annotations

import functools

from transformers import PreTrainedTokenizerFast

from ablate.models.llm import PAD_TOKEN

TOKENIZER_ID = "synthetic-bpe"
VOCAB_SIZE = 1024
SPECIALS = ("<s>", "</s>", PAD_TOKEN, "<unk>")
# A Vicuna-style chat template so `prompt_format=tokenizer` also works with the synthetic tokenizer.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}USER: {{ m['content'] }} ASSISTANT:"
    "{% else %} {{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)


def corpus() -> list[str]:
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
def tokenizer_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=2, show_progress=False,
                                  special_tokens=list(SPECIALS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer=trainer)
    bos_id = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", bos_id)])
    return tok.to_str()


def shapes_tokenizer() -> PreTrainedTokenizerFast:
    """The deterministic in-process byte-level BPE (BOS ``<s>``, EOS ``</s>``, PAD ``<pad>``)."""
    from tokenizers import Tokenizer

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(tokenizer_json()),
                                        bos_token="<s>", eos_token="</s>", pad_token=PAD_TOKEN,
                                        unk_token="<unk>", padding_side="right")
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
