"""An ACP prompt (a list of content blocks) as the text the agent loop takes.

Text blocks are joined; an embedded text resource (a file the user @-mentioned, with its
content) is included under its URI; a resource link is named so the model can read it with
its tools. Images and audio are not accepted (the agent says so in its capabilities), so
they become a note rather than being silently dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from acp.schema import (
    EmbeddedResourceContentBlock,
    ResourceContentBlock,
    TextContentBlock,
    TextResourceContents,
)

__all__ = ["prompt_text"]


def prompt_text(blocks: Sequence[Any]) -> str:
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, TextContentBlock):
            parts.append(block.text)
        elif isinstance(block, EmbeddedResourceContentBlock):
            res = block.resource
            if isinstance(res, TextResourceContents):
                parts.append(f"<context uri=\"{res.uri}\">\n{res.text}\n</context>")
            else:
                parts.append(f"[attached binary resource {res.uri} was not read]")
        elif isinstance(block, ResourceContentBlock):
            parts.append(f"[referenced: {block.uri}]")
        else:
            parts.append(f"[a {getattr(block, 'type', 'non-text')} block was attached; Colony reads text only]")
    return "\n\n".join(parts)
