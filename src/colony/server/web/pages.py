"""The web UI's routes: login, chat, sessions, audit, memory and health pages, and the static files.

Pages are rendered on the server with Jinja2 (autoescaping on for every ``.html`` template) and
use htmx for the small partial updates (the next page of a table). The live chat is the only
client-side code of substance (``static/chat.js``): it talks to the same JSON API and SSE stream
every other client uses, so the UI holds no logic of its own.

Authentication is the login cookie (see `colony.server.auth`); a page request without it is
redirected to ``/login``. Every page answer carries a strict Content-Security-Policy: scripts
and styles only from this origin, no inline script, no framing.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import typing
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from colony import __version__
from colony.memory import Memory, MemoryIn, MemoryItem
from colony.memory.models import MemoryType
from colony.node import Node
from colony.server.api._deps import node as node_of
from colony.server.api._deps import turns as turns_of
from colony.server.api.health import health_report, model_status
from colony.server.auth import (
    COOKIE_NAME,
    SESSION_TTL_S,
    csrf_token,
    end_web_session,
    page_auth,
    start_web_session,
    token_matches,
)
from colony.server.login_limit import LoginLimiter
from colony.server.markdown import render_markdown
from colony.server.web import _views as views
from colony.tools.middleware import Outcome

__all__ = ["COOKIE_MAX_AGE_S", "MEMORY_HITS", "PAGE_SIZE", "SECURITY_HEADERS", "templates", "web_router"]

_HERE = Path(__file__).resolve().parent
_STATIC = _HERE / "static"

#: Rows per page of the sessions and audit tables.
PAGE_SIZE = 50
#: The login cookie lasts as long as its server-side session; logging out ends both.
COOKIE_MAX_AGE_S = SESSION_TTL_S

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Vary": "HX-Request, Cookie",
}

def _asset_version() -> str:
    """A short hash of the stylesheet and scripts, so a new release is never served from a stale cache."""
    digest = hashlib.sha256()
    for name in ("colony.css", "chat.js", "market.js"):
        digest.update((_STATIC / name).read_bytes())
    return digest.hexdigest()[:12]


templates = Jinja2Templates(directory=str(_HERE / "templates"))
templates.env.filters["when"] = views.when
templates.env.filters["markdown"] = render_markdown  # sanitised HTML of a model's answer
templates.env.globals["asset_version"] = _asset_version()

web_router = APIRouter(include_in_schema=False)


# -- helpers ------------------------------------------------------------------------------------


def _node_name(node: Node) -> str:
    name = getattr(node.settings, "node_name", None)
    return str(name) if name else socket.gethostname()


def _render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    base = {
        "request": request,
        "version": __version__,
        "csrf": csrf_token(request),
        "node_name": _node_name(node_of(request)),
        "model": model_status(request),
        "active": "",
        "title": "",
    }
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status,
                                      headers=SECURITY_HEADERS)


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    login_url = "/login?" + urlencode({"next": target})
    if _is_htmx(request):
        # A partial request (the next page of a table) must not swap the login form into a table:
        # htmx turns this header into a full-page navigation.
        return Response(status_code=200, headers={"HX-Redirect": login_url, **SECURITY_HEADERS})
    return RedirectResponse(login_url, status_code=303)


def _safe_next(value: str | None) -> str:
    """Only same-site paths: ``/x`` yes, ``//evil.example`` and ``https://…`` no (no open redirect).

    Backslashes and control characters are refused too: browsers drop a tab and read a backslash
    as a slash, so ``/<tab>/evil.example`` would leave the site.
    """
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value and value.isprintable():
        return value
    return "/"


def _not_found(request: Request, what: str) -> Response:
    return _render(request, "error.html", {"title": "Not found", "message": what}, status=404)


# -- static files --------------------------------------------------------------------------------


@web_router.get("/static/{path:path}")
async def static_file(path: str) -> FileResponse:
    """The stylesheet, the chat script and vendored libraries (nothing is fetched from a CDN)."""
    # A NUL or another control character is never part of a file name we ship, and a NUL makes
    # the path functions raise rather than answer: refuse those before touching the filesystem.
    if not path.isprintable():
        raise HTTPException(404, "No such static file.")
    target = (_STATIC / path).resolve()
    if not target.is_relative_to(_STATIC) or not target.is_file():
        raise HTTPException(404, f"No static file {path!r}.")
    return FileResponse(target, headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})


# -- login ---------------------------------------------------------------------------------------


@web_router.get("/login")
async def login_form(
    request: Request, next_path: Annotated[str | None, Query(alias="next", max_length=2048)] = None
) -> Response:
    if page_auth(request):
        return RedirectResponse(_safe_next(next_path), status_code=303)
    return _login_page(request, _safe_next(next_path), None)


def _login_page(request: Request, next_path: str, error: str | None, status: int = 200) -> Response:
    return templates.TemplateResponse(
        request, "login.html", {"version": __version__, "next": next_path, "error": error},
        status_code=status, headers=SECURITY_HEADERS,
    )


def _login_limiter(request: Request) -> LoginLimiter:
    limiter: LoginLimiter = request.app.state.login_limiter
    return limiter


@web_router.post("/login")
async def login(
    request: Request,
    token: Annotated[str, Form(max_length=512)] = "",
    next_path: Annotated[str, Form(alias="next", max_length=2048)] = "/",
) -> Response:
    limiter = _login_limiter(request)
    client = request.client.host if request.client else "unknown"
    wait = limiter.retry_after(client)
    if wait:
        # Refused before the token is even compared: while locked out, a right guess looks the same.
        response = _login_page(
            request, _safe_next(next_path),
            f"Too many wrong tokens from this address. Wait {wait} s, then paste the output of `colony token`.",
            status=429,
        )
        response.headers["Retry-After"] = str(wait)
        return response
    candidate = token.strip()
    if not candidate or not token_matches(request, candidate):  # hmac.compare_digest inside
        limiter.failed(client)
        return _login_page(
            request, _safe_next(next_path),
            "That is not this node's token. Run `colony token` where the node runs and paste what it prints.",
            status=401,
        )
    end_web_session(request)  # logging in again replaces a previous login of this browser
    response = RedirectResponse(_safe_next(next_path), status_code=303)
    response.set_cookie(
        COOKIE_NAME, start_web_session(request), max_age=COOKIE_MAX_AGE_S, path="/",
        httponly=True, samesite="strict", secure=request.url.scheme == "https",
    )
    return response


@web_router.post("/logout")
async def logout(request: Request, csrf: Annotated[str, Form(max_length=256)] = "") -> Response:
    # A signed-in browser must prove the form is ours; one without a valid cookie has nothing to lose.
    if page_auth(request) and not hmac.compare_digest(csrf.encode(), csrf_token(request).encode()):
        return _render(request, "error.html", {"title": "Not logged out",
                                               "message": "The logout form was stale; reload the page and try again."},
                       status=403)
    end_web_session(request)  # the cookie is dead on the server, not only deleted in this browser
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
    return response


# -- chat ------------------------------------------------------------------------------------------


@web_router.get("/")
async def chat_page(request: Request, session: Annotated[str | None, Query(max_length=64)] = None) -> Response:
    if not page_auth(request):
        return _to_login(request)
    records = node_of(request).records
    title, transcript = "New conversation", views.Transcript()
    if session:
        row = records.get_session(session)
        if row is None:
            return _not_found(request, f"There is no session {session!r} on this node.")
        title = row["title"] or session
        transcript = views.build_transcript(
            records.load_messages(session), records.list_turns(session),
            records.list_tool_calls(session_id=session, limit=10_000), is_live=turns_of(request).known,
        )
    return _render(request, "chat.html", {
        "active": "chat", "title": "Chat", "session_id": session or "", "session_title": title,
        "transcript": transcript,
    })


# -- sessions --------------------------------------------------------------------------------------


@web_router.get("/sessions")
async def sessions_page(request: Request, offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> Response:
    if not page_auth(request):
        return _to_login(request)
    rows = node_of(request).records.list_sessions(limit=PAGE_SIZE + 1, offset=offset)
    context = {
        "active": "sessions", "title": "Sessions", "sessions": rows[:PAGE_SIZE],
        "next_offset": offset + PAGE_SIZE if len(rows) > PAGE_SIZE else None,
    }
    return _render(request, "_session_rows.html" if _is_htmx(request) else "sessions.html", context)


@web_router.get("/sessions/{session_id}")
async def session_page(request: Request, session_id: str) -> Response:
    if not page_auth(request):
        return _to_login(request)
    records = node_of(request).records
    row = records.get_session(session_id)
    if row is None:
        return _not_found(request, f"There is no session {session_id!r} on this node.")
    turns = records.list_turns(session_id)
    transcript = views.build_transcript(
        records.load_messages(session_id), turns, records.list_tool_calls(session_id=session_id, limit=10_000)
    )
    return _render(request, "session.html", {
        "active": "sessions", "title": row["title"] or session_id, "session": row, "turns": turns,
        "transcript": transcript,
    })


# -- audit -------------------------------------------------------------------------------------------


@web_router.get("/audit")
async def audit_page(
    request: Request,
    tool: Annotated[str | None, Query(max_length=200)] = None,
    outcome: Annotated[str | None, Query(max_length=50)] = None,
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> Response:
    if not page_auth(request):
        return _to_login(request)
    node = node_of(request)
    tool, outcome = tool or None, outcome or None
    rows = node.records.list_tool_calls(tool=tool, outcome=outcome, limit=PAGE_SIZE + 1, before_id=before_id)
    shown = views.audit_rows(rows[:PAGE_SIZE])
    more_url = None
    if len(rows) > PAGE_SIZE and shown:
        params = {k: v for k, v in (("tool", tool), ("outcome", outcome)) if v}
        more_url = "/audit?" + urlencode({**params, "before_id": shown[-1].id})
    tools = sorted({*node.registry.names(), *([tool] if tool else [])})
    context = {
        "active": "audit", "title": "Audit", "rows": shown, "more_url": more_url, "tool": tool or "",
        "outcome": outcome or "", "tools": tools, "outcomes": list(typing.get_args(Outcome)),
        "filtered": bool(tool or outcome),
    }
    return _render(request, "_audit_rows.html" if _is_htmx(request) else "audit.html", context)


# -- health ------------------------------------------------------------------------------------------


@web_router.get("/health")
async def health_page(request: Request) -> Response:
    if not page_auth(request):
        return _to_login(request)
    report = await health_report(request)
    return _render(request, "health.html", {"active": "health", "title": "Health", "report": report})


# -- memory ------------------------------------------------------------------------------------------
# Plain ``def`` routes: recall embeds the query and walks the graph (blocking work), so FastAPI
# runs these in its thread pool instead of on the event loop.

#: Hits a memory search shows.
MEMORY_HITS = 10


def _memory_page(request: Request, *, q: str = "", added: MemoryItem | None = None, unembedded: bool = False,
                 add_error: str | None = None, add_content: str = "", add_type: str = "fact",
                 add_user_stated: bool = False, status: int = 200) -> Response:
    mem = node_of(request).memory
    result = mem.recall(q, k=MEMORY_HITS) if q.strip() else None
    context = {
        "active": "memory", "title": "Memory", "q": q, "k": MEMORY_HITS, "result": result,
        "review": [] if result is not None else mem.review_queue(MEMORY_HITS),
        "back": "/memory" + (f"?{urlencode({'q': q})}" if q else ""),
        "stats": mem.stats(), "embedder_down": _embedder_down(mem), "added": added, "unembedded": unembedded,
        "memory_types": list(typing.get_args(MemoryType)), "add_error": add_error, "add_content": add_content,
        "add_type": add_type, "add_user_stated": add_user_stated,
    }
    return _render(request, "memory.html", context, status=status)


def _embedder_down(mem: Memory) -> str | None:
    return (mem.embedder_error or "no embedding model is configured") if mem.embedder is None else None


def _memory_login(request: Request) -> Response:
    """A form post without a login goes back to the memory page after logging in (not to the POST URL)."""
    if _is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": "/login?next=%2Fmemory", **SECURITY_HEADERS})
    return RedirectResponse("/login?next=%2Fmemory", status_code=303)


def _csrf_ok(request: Request, sent: str) -> bool:
    expected = csrf_token(request).encode()
    header = request.headers.get("x-csrf-token", "")
    return hmac.compare_digest(sent.encode(), expected) or hmac.compare_digest(header.encode(), expected)


def _stale_form(request: Request) -> Response:
    return _render(request, "error.html", {"title": "Not saved", "message":
                   "The form was stale; reload the memory page and try again."}, status=403)


@web_router.get("/memory")
def memory_page(
    request: Request,
    q: Annotated[str, Query(max_length=2000)] = "",
    added: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    unembedded: bool = False,
) -> Response:
    if not page_auth(request):
        return _to_login(request)
    if _is_htmx(request) and not request.headers.get("hx-history-restore-request"):
        mem = node_of(request).memory
        result = mem.recall(q, k=MEMORY_HITS) if q.strip() else None
        return _render(request, "_memory_hits.html", {
            "result": result, "k": MEMORY_HITS, "back": "/memory" + (f"?{urlencode({'q': q})}" if q else ""),
            "review": [] if result is not None else mem.review_queue(MEMORY_HITS), "embedder_down": _embedder_down(mem),
        })
    item = node_of(request).memory.get(added) if added is not None else None
    return _memory_page(request, q=q, added=item, unembedded=unembedded and item is not None)


@web_router.post("/memory")
def memory_add(
    request: Request,
    content: Annotated[str, Form()] = "",
    memory_type: Annotated[str, Form(max_length=20)] = "fact",
    user_stated: Annotated[str, Form(max_length=10)] = "",
    csrf: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    if not page_auth(request):
        return _memory_login(request)
    if not _csrf_ok(request, csrf):
        return _stale_form(request)
    try:
        item = MemoryIn.model_validate({"content": content, "memory_type": memory_type, "source_kind": "user",
                                        "verified": "user_stated" if user_stated else "inferred"})
    except ValidationError as exc:
        problem = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        return _memory_page(request, add_error=f"Not stored: {problem}.", add_content=content, add_type=memory_type,
                            add_user_stated=bool(user_stated), status=422)
    report = node_of(request).memory.ingest([item])
    query = {"added": report.ids[0], **({"unembedded": "true"} if report.unembedded else {})}
    return RedirectResponse("/memory?" + urlencode(query), status_code=303)


@web_router.post("/memory/{memory_id}/forget")
def memory_forget(
    request: Request,
    memory_id: Annotated[int, PathParam(ge=1, le=2**62)],
    csrf: Annotated[str, Form(max_length=256)] = "",
    next_path: Annotated[str, Form(alias="next", max_length=2048)] = "/memory",
) -> Response:
    if not page_auth(request):
        return _memory_login(request)
    if not _csrf_ok(request, csrf):
        return _stale_form(request)
    removed = node_of(request).memory.forget(memory_id)
    if _is_htmx(request):
        text = f"Forgot memory #{memory_id}." if removed else f"Memory #{memory_id} was already gone."
        return _render(request, "_memory_forgotten.html", {"text": text})
    if not removed:
        return _not_found(request, f"There is no memory #{memory_id} on this node; it may have been forgotten already.")
    target = _safe_next(next_path)
    return RedirectResponse(target if target.startswith("/memory") else "/memory", status_code=303)
