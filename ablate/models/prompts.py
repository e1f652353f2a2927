"""Prompt formats: how a conversation becomes LM text, and which parts of it carry the loss.

A :class:`PromptFormat` renders a conversation ``[(role, text), ...]`` (roles ``user`` / ``assistant``,
alternating, user first) into *segments* ``[(text, is_target), ...]``: the data pipeline tokenizes segment by
segment, so the loss mask covers exactly the assistant replies (and their end-of-sequence marker), never the
system prompt, the user turns or the role tags.  ``generation_prompt(message)`` renders one user message
ready for the assistant's reply (generation and option scoring).

The rendered text is byte-identical to Prismatic's prompt builders (``prismatic/models/backbones/llm/
prompting``, ``get_prompt()`` after every turn; tests/models/test_prompts_llm.py holds each literal string):
``base`` = ``In: {msg}\\nOut: {resp}</s>``, ``vicuna-v1.5`` = LLaVA system prompt + ``USER: … ASSISTANT: …``,
``llama-2-chat`` = ``[INST] <<SYS>\\n{sys}\\n<</SYS>>\\n\\n{msg} [/INST] {resp}</s>`` (Prismatic's single ``>``
and its own system prompt), ``mistral-instruct`` = ``[INST] … [/INST]``, ``phi-2`` = ``Input: {msg}\\nOutput:
{resp}\\n<|endoftext|>`` (BOS ``<|endoftext|>`` first), and ``tokenizer`` = the tokenizer's own chat template.
For the Llama-tokenizer formats Prismatic tokenizes each turn ``rstrip``-ed, so the space after a role tag
belongs to the reply segment (`` red</s>``); Phi-2's tokenizer is not stripped, so its ``Output: `` keeps the
space and the reply starts without one.  ``generation_prompt`` is Prismatic's ``get_potential_prompt``
(``rstrip``-ed), and ``option_prefix`` what Prismatic's option scoring puts before an option (a space for the
Llama family, whose SentencePiece adds one; none for Phi-2, which scores ``Yes`` right after ``Output:``).
BOS is not part of any segment: ``tokenize_conversation`` prepends the tokenizer's BOS id (for Phi-2 that is
Prismatic's textual ``<|endoftext|>``).  ``<image>`` markers are stripped from messages (the image tokens are
inserted by the VLM, right after BOS).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ablate.registry import PROMPT_FORMATS

Conversation = Sequence[tuple[str, str]]
Segments = list[tuple[str, bool]]

LLAVA_SYSTEM_PROMPT = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
LLAMA2_SYSTEM_PROMPT = (
    "You are a helpful language and vision assistant. You are able to understand the visual content that "
    "the user provides, and assist the user with a variety of tasks using natural language."
)
IMAGE_MARKER = "<image>"


def clean_message(text: str) -> str:
    """Strip the LLaVA ``<image>`` marker and surrounding whitespace, as Prismatic does."""
    return text.replace(IMAGE_MARKER, "").strip()


def _check_roles(conversation: Conversation) -> None:
    for i, (role, _) in enumerate(conversation):
        expected = "user" if i % 2 == 0 else "assistant"
        if role != expected:
            raise ValueError(f"conversation turn {i}: role {role!r}; expected {expected!r} "
                             "(turns alternate user/assistant, user first)")


@dataclass(frozen=True)
class WrapFormat:
    """A format given by string wraps: ``first_user`` wraps the first user turn (system prompt included),
    ``user`` later user turns, ``assistant`` replies (``{eos}`` is filled with the tokenizer's EOS text)."""

    name: str
    first_user: str
    user: str
    assistant: str
    eos: str = "</s>"
    option_prefix: str = " "

    def render(self, conversation: Conversation) -> Segments:
        _check_roles(conversation)
        segments: Segments = []
        for i, (role, text) in enumerate(conversation):
            msg = clean_message(text)
            if role == "user":
                wrap = self.first_user if i == 0 else self.user
                segments.append((wrap.format(msg=msg), False))
            else:
                segments.append((self.assistant.format(msg=msg, eos=self.eos), True))
        return segments

    def generation_prompt(self, message: str) -> str:
        """One user message, ready for the assistant's reply (Prismatic's ``get_potential_prompt``)."""
        return self.first_user.format(msg=clean_message(message)).rstrip()


@dataclass(frozen=True)
class ChatTemplateFormat:
    """The tokenizer's own chat template: segments come from rendering growing prefixes and diffing."""

    name: str
    tokenizer: Any
    option_prefix: str = ""  # a template's reply starts right after its assistant header

    def _apply(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt)
        bos = getattr(self.tokenizer, "bos_token", None)
        return text[len(bos):] if bos and text.startswith(bos) else text

    def render(self, conversation: Conversation) -> Segments:
        _check_roles(conversation)
        segments: Segments = []
        messages: list[dict[str, str]] = []
        done = ""
        for role, text in conversation:
            messages.append({"role": role, "content": clean_message(text)})
            full = self._apply(messages, add_generation_prompt=(role == "user"))
            if not full.startswith(done):
                raise ValueError(f"prompt format 'tokenizer': the chat template of {type(self.tokenizer).__name__} "
                                 "does not render conversations as growing prefixes; use an explicit format")
            segments.append((full[len(done):], role == "assistant"))
            done = full
        return segments

    def generation_prompt(self, message: str) -> str:
        return self._apply([{"role": "user", "content": clean_message(message)}], add_generation_prompt=True)


PromptFormat = WrapFormat | ChatTemplateFormat


def _wrap_builder(name: str, first_user: str, user: str, assistant: str = " {msg}{eos}", *,
                  eos: str | None = None, option_prefix: str = " ") -> Callable[[Any], WrapFormat]:
    def build(tokenizer: Any = None) -> WrapFormat:
        end = eos or getattr(tokenizer, "eos_token", None) or "</s>"
        return WrapFormat(name, first_user, user, assistant, end, option_prefix)
    return build


base = _wrap_builder("base", "In: {msg}\nOut:", "In: {msg}\nOut:")
vicuna_v15 = _wrap_builder("vicuna-v1.5", LLAVA_SYSTEM_PROMPT + " USER: {msg} ASSISTANT:", "USER: {msg} ASSISTANT:")
# Prismatic's format_system_prompt writes "<<SYS>\n" (one '>'); the paper's Llama-2-chat models trained on it
llama_2_chat = _wrap_builder("llama-2-chat", "[INST] <<SYS>\n" + LLAMA2_SYSTEM_PROMPT + "\n<</SYS>>\n\n{msg} [/INST]",
                             "[INST] {msg} [/INST]")
mistral_instruct = _wrap_builder("mistral-instruct", "[INST] {msg} [/INST]", "[INST] {msg} [/INST]")
phi_2 = _wrap_builder("phi-2", "Input: {msg}\nOutput: ", "Input: {msg}\nOutput: ", "{msg}\n{eos}",
                      eos="<|endoftext|>", option_prefix="")


def chat_template_format(tokenizer: Any = None) -> ChatTemplateFormat:
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ValueError("prompt format 'tokenizer': expected a tokenizer with a chat_template, got "
                         f"{type(tokenizer).__name__ if tokenizer is not None else None}")
    return ChatTemplateFormat("tokenizer", tokenizer)


def get_prompt_format(format_id: str, tokenizer: Any = None) -> PromptFormat:
    """The prompt format ``format_id``; ``tokenizer`` supplies the EOS text (default ``</s>``) and, for
    ``tokenizer``, the chat template."""
    return PROMPT_FORMATS.get(format_id)(tokenizer)


IGNORE_INDEX = -100


def tokenize_conversation(tokenizer: Any, prompt_format: PromptFormat,
                          conversation: Conversation) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of a conversation: BOS + each segment tokenized on its own; labels are the
    ids on target (assistant) segments and ``IGNORE_INDEX`` elsewhere."""
    input_ids: list[int] = [] if tokenizer.bos_token_id is None else [tokenizer.bos_token_id]
    labels: list[int] = [IGNORE_INDEX] * len(input_ids)
    for text, is_target in prompt_format.render(conversation):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        input_ids.extend(ids)
        labels.extend(ids if is_target else [IGNORE_INDEX] * len(ids))
    return input_ids, labels
