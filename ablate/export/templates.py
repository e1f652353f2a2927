"""The exported chat template: a Jinja template that renders exactly ablate's prompt text, image marker first.

Why it exists: ablate inserts the image tokens right after BOS, before the system prompt and the first user
turn, whatever the prompt format.  Llava's processor expands each ``<image>`` of the rendered text into the
image tokens, and the tokenizer prepends BOS, so the template puts ``<image>`` at the very start (when any
message carries an image) and then renders the conversation as ablate's :mod:`ablate.models.prompts` does:

- wrap formats (``base``, ``vicuna-v1.5``, ``llama-2-chat``, ``mistral-instruct``): the format's own wrap
  strings, written into the template as literals (first user turn, later user turns, assistant replies
  followed by the EOS text); the message text is cleaned as ``clean_message`` does (``<image>`` removed,
  whitespace stripped);
- ``tokenizer`` (the LM's own chat template): the original template renders the cleaned messages into a
  captured block, and a leading BOS text is cut off (the tokenizer adds BOS itself), as ablate's
  ``ChatTemplateFormat`` does.

Message contents may be strings or HF's list of ``{"type": "image"}`` / ``{"type": "text", "text": ...}``
items.  The export checks the result token for token against ablate (see ``hf_llava.check_tokens``).
"""

from __future__ import annotations

import json
from typing import Any

from ablate.models.prompts import IMAGE_MARKER, ChatTemplateFormat, WrapFormat

_SCAN = (
    "{%- set ns = namespace(image=false, msgs=[]) -%}"
    "{%- for m in messages -%}"
    "{%- if m['role'] not in ['user', 'assistant'] -%}"
    "{{ raise_exception('this model was trained with user/assistant turns only, got role ' + m['role']) }}"
    "{%- endif -%}"
    "{%- if m['content'] is string -%}{%- set text = m['content'] -%}"
    "{%- else -%}"
    "{%- for c in m['content'] -%}{%- if c['type'] == 'image' -%}{%- set ns.image = true -%}{%- endif -%}{%- endfor -%}"
    "{%- set text = m['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('') -%}"
    "{%- endif -%}"
    "{%- set ns.msgs = ns.msgs + [{'role': m['role'], 'content': (text | replace(MARKER, '') | trim)}] -%}"
    "{%- endfor -%}"
)


def _lit(text: str) -> str:
    """A Jinja string literal of ``text`` (Jinja decodes the same backslash escapes as JSON's ASCII output)."""
    return json.dumps(text)


def _split(wrap: str) -> tuple[str, str]:
    before, _, after = wrap.partition("{msg}")
    return before, after


def _wrap_template(fmt: WrapFormat) -> str:
    fb, fa = _split(fmt.first_user)
    ub, ua = _split(fmt.user)
    ab, aa = _split(fmt.assistant.replace("{eos}", fmt.eos))
    return (
        _SCAN
        + "{%- if ns.image -%}{{ MARKER }}{%- endif -%}"
        + "{%- for m in ns.msgs -%}"
        + "{%- if m['role'] == 'user' -%}"
        + f"{{%- if loop.first -%}}{{{{ {_lit(fb)} }}}}{{{{ m['content'] }}}}{{{{ {_lit(fa)} }}}}"
        + f"{{%- else -%}}{{{{ {_lit(ub)} }}}}{{{{ m['content'] }}}}{{{{ {_lit(ua)} }}}}{{%- endif -%}}"
        + f"{{%- else -%}}{{{{ {_lit(ab)} }}}}{{{{ m['content'] }}}}{{{{ {_lit(aa)} }}}}"
        + "{%- endif -%}"
        + "{%- endfor -%}"
    )


def _tokenizer_template(fmt: ChatTemplateFormat) -> str:
    original = fmt.tokenizer.chat_template
    bos = getattr(fmt.tokenizer, "bos_token", None) or ""
    return (
        _SCAN
        + "{%- set messages = ns.msgs -%}"
        + "{%- set body -%}" + original + "{%- endset -%}"
        + "{%- if ns.image -%}{{ MARKER }}{%- endif -%}"
        + f"{{%- if {_lit(bos)} and body.startswith({_lit(bos)}) -%}}{{{{ body[{len(bos)}:] }}}}"
        + "{%- else -%}{{ body }}{%- endif -%}"
    )


def chat_template(prompt_format: Any) -> str:
    """The Jinja chat template that renders ``prompt_format``'s text with the image marker first."""
    if isinstance(prompt_format, WrapFormat):
        body = _wrap_template(prompt_format)
    elif isinstance(prompt_format, ChatTemplateFormat):
        body = _tokenizer_template(prompt_format)
    else:
        raise TypeError(f"prompt format {type(prompt_format).__name__}: no chat template mapping")
    return "{%- set MARKER = " + _lit(IMAGE_MARKER) + " -%}" + body
