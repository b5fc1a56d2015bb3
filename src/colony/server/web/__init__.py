"""The web UI of a node: server-rendered pages (Jinja2 + htmx) over the same API every client uses.

`web_router` holds the pages and the static files; `create_app` includes it like any other
router. Templates live in ``templates/``, the stylesheet, the chat script and vendored htmx in
``static/`` (see ``static/vendor/README.md`` for versions and checksums). Nothing is loaded from
a CDN at run time.
"""

from __future__ import annotations

from colony.server.web.pages import web_router

__all__ = ["web_router"]
