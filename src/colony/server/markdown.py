"""The model's answers as HTML: markdown rendered on the server, then sanitised by an allow-list.

An answer is untrusted text (a prompt injection can make the model write anything), so two
independent layers stand between it and the page:

1. markdown-it-py in CommonMark mode with raw HTML **off**: ``<script>`` in an answer is text,
   not markup; links are validated (no ``javascript:``), and images are not rendered at all (an
   image URL would be a request to wherever the model says, with whatever it put in the URL).
2. nh3 (the Ammonia sanitiser) keeps only the tags and attributes markdown produces, only
   http(s) and mailto links (with ``rel="noopener noreferrer nofollow"``), and no classes or
   styles, whatever the first layer let through.

The page's Content-Security-Policy (no inline script) is the third layer. Used by the transcript
templates (the ``markdown`` filter) and by the chat's event stream (``text_html`` fields).
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

__all__ = ["ALLOWED_TAGS", "render_markdown"]

ALLOWED_TAGS = frozenset({
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "s", "del", "code", "pre",
    "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td",
})
_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
_URL_SCHEMES = frozenset({"http", "https", "mailto"})
#: An answer longer than this is shown as text: rendering is linear, but a page is not a book.
MAX_MARKDOWN_CHARS = 200_000


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.disable("image")
    return md


def render_markdown(text: str) -> Markup:
    """``text`` as sanitised HTML, safe to insert into a page as is."""
    if len(text) > MAX_MARKDOWN_CHARS:
        return Markup("<p>{}</p>").format(text)  # escaped by Markup.format
    html = _parser().render(text)
    clean = nh3.clean(
        html, tags=set(ALLOWED_TAGS), attributes={k: set(v) for k, v in _ATTRIBUTES.items()},
        url_schemes=set(_URL_SCHEMES), link_rel="noopener noreferrer nofollow", strip_comments=True,
    )
    return Markup(clean)  # sanitised just above by an allow-list
