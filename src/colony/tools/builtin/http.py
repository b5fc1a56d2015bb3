"""http_get: fetch a page from an allow-listed host.

The host check compares the hostname exactly as the HTTP client parsed it (httpx's own URL
parser, so the checked host and the contacted host cannot differ), refuses user info outright
(``http://127.0.0.1@evil.com/`` really goes to evil.com) and refuses backslashes, whitespace and
control characters that parsers disagree about. Redirects are followed by hand, at most three,
each target checked like the original URL. Proxies from the environment are ignored so a
request never leaves through a host nobody allowed.
"""

from __future__ import annotations

import codecs
import contextlib

import httpx
from pydantic import BaseModel, ConfigDict, Field

from colony.errors import ToolArgumentsError, ToolDeniedError, ToolError, ToolTimeoutError
from colony.tools.output import truncate
from colony.tools.registry import ToolContext, tool

__all__ = ["MAX_REDIRECTS", "HttpGetArgs", "check_url", "http_get"]

_NAME = "http_get"
MAX_REDIRECTS = 3
_BINARY_TYPES = ("image/", "audio/", "video/", "font/", "application/octet-stream", "application/zip",
                 "application/pdf", "application/gzip", "application/x-tar")


class HttpGetArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="An http:// or https:// URL on an allowed host.", min_length=1, max_length=4096)
    max_bytes: int = Field(default=200_000, ge=1, le=10_000_000, description="Read at most this many bytes of the body.")


def _normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def check_url(url: str, allowed_hosts: list[str]) -> httpx.URL:
    """Parse ``url`` and return it if it is http(s) on an allowed host; raise a `ToolError` otherwise."""
    if any(ch.isspace() or ord(ch) < 0x20 or ch in "\\\x7f" for ch in url):
        raise ToolArgumentsError(_NAME, f"The URL {url!r} contains whitespace, control characters or backslashes.")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ToolArgumentsError(_NAME, f"The URL {url!r} is not valid: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise ToolArgumentsError(_NAME, f"Only http:// and https:// URLs can be fetched, not {url!r}.")
    authority = url.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if parsed.userinfo or "@" in authority:
        raise ToolDeniedError(_NAME, f"The URL {url!r} carries user info (user@host), which is refused; drop it.")
    host = _normal_host(parsed.raw_host.decode("ascii", errors="replace"))
    allowed = {_normal_host(h) for h in allowed_hosts}
    if not host or host not in allowed:
        names = ", ".join(sorted(allowed)) or "(none)"
        raise ToolDeniedError(
            _NAME,
            f"Host {host or '(empty)'!r} is not in http_allowed_hosts ({names}); only those hosts can be fetched. "
            "Ask the operator to add it to COLONY_HTTP_ALLOWED_HOSTS.",
        )
    return parsed


def _decode(body: bytes, charset: str | None) -> str:
    encoding = "utf-8"
    if charset:
        with contextlib.suppress(LookupError):
            encoding = codecs.lookup(charset).name
    return body.decode(encoding, errors="replace")


async def _read(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            del body[max_bytes:]
            return bytes(body), True
    return bytes(body), False


def _render(response: httpx.Response, body: bytes, cut: bool, redirected: bool, max_bytes: int) -> str:
    content_type = response.headers.get("content-type", "(none)")
    lines = [f"status: {response.status_code} {response.reason_phrase}".rstrip(), f"content-type: {content_type}"]
    if redirected:
        lines.append(f"url: {response.url}")
    lines.append("--- body ---")
    if content_type.lower().startswith(_BINARY_TYPES) or b"\x00" in body[:1024]:
        lines.append(f"(binary body of {len(body)}{'+' if cut else ''} bytes, not shown)")
    else:
        lines.append(_decode(body, response.charset_encoding))
        if cut:
            lines.append(f"…[body cut at max_bytes={max_bytes}]")
    return "\n".join(lines)


@tool(effect="network")
async def http_get(ctx: ToolContext, args: HttpGetArgs) -> str:
    """Fetch a URL with HTTP GET from an allowed host; returns status, content type and the body text.

    Follows at most 3 redirects, each to an allowed host. Non-2xx statuses are returned, not raised.
    """
    allowed = ctx.settings.http_allowed_hosts
    url = check_url(args.url, allowed)
    timeout = httpx.Timeout(ctx.settings.tool_timeout_s)
    headers = {"User-Agent": "colony/0.1 (http_get tool)"}
    try:
        async with httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=timeout, headers=headers) as client:
            for hop in range(MAX_REDIRECTS + 1):
                async with client.stream("GET", url) as response:
                    if response.has_redirect_location:
                        if hop == MAX_REDIRECTS:
                            raise ToolError(_NAME, f"{args.url} redirected more than {MAX_REDIRECTS} times; giving up.")
                        target = url.join(response.headers["location"])
                        try:
                            url = check_url(str(target), allowed)
                        except ToolError as exc:
                            raise type(exc)(_NAME, f"{url} redirects to {target}, which is refused: {exc}") from exc
                        continue
                    body, cut = await _read(response, args.max_bytes)
                    text = _render(response, body, cut, hop > 0, args.max_bytes)
                    return truncate(text, ctx.settings.tool_output_limit)
    except httpx.TimeoutException as exc:
        raise ToolTimeoutError(_NAME, f"{url} did not answer within {ctx.settings.tool_timeout_s:g}s.") from exc
    except httpx.InvalidURL as exc:
        raise ToolArgumentsError(_NAME, f"A redirect from {args.url} gave an invalid URL: {exc}") from exc
    except httpx.HTTPError as exc:
        raise ToolError(_NAME, f"Could not fetch {url}: {exc.__class__.__name__}: {exc}") from exc
    raise ToolError(_NAME, f"{args.url} could not be fetched.")  # unreachable: the loop returns or raises
