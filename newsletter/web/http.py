"""What every route of `serve` shares: the security headers, bounded request bodies, waiting out a busy store
without stopping the event loop, where a POST came from, the ASGI lifespan, and addresses masked for pages and
logs."""

from __future__ import annotations

import asyncio
import inspect
import urllib.parse

from starlette.requests import Request

from ..base.database import StoreBusy

READ = ("GET", "HEAD")
ONE_CLICK_FIELD = ("List-Unsubscribe", "One-Click")  # RFC 8058
ONE_CLICK = "=".join(ONE_CLICK_FIELD).encode()  # the body exactly as mail providers send it
PAGE_FIELD = ("from", "page")  # what tells our unsubscribe page's button from a mail provider
UNSUBSCRIBE_FORM = (ONE_CLICK_FIELD, PAGE_FIELD)  # the hidden fields of that button

MAX_BODY = 4096
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes | None:
    """The request body, or None when it is larger than `limit` (read no further)."""
    if int(request.headers.get("content-length") or 0) > limit:
        return None
    chunks, size = [], 0
    while True:  # ASGI's receive, not Request.stream(): an async generator costs a tenth of a one-click
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


STORE_WAIT = 10.0  # how long a request waits for another process to let go of the suppression store
STILL_SUPPRESSED = {"bounce": "bounced", "complaint": "was reported as spam", "manual": "was stopped by us"}


async def patiently(call, *args):
    """`call(*args)` (awaited when it gives an awaitable), again and again while a store is busy, yielding to the
    loop between tries, for up to STORE_WAIT seconds; then StoreBusy (a 503) for the caller."""
    loop = asyncio.get_running_loop()
    deadline, pause = loop.time() + STORE_WAIT, 0.005
    while True:
        try:
            result = call(*args)
            return await result if inspect.isawaitable(result) else result
        except StoreBusy:
            if loop.time() + pause > deadline:
                raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)


def same_origin(request, site_url: str) -> bool:
    """A POST from our own pages. Browsers say where a POST comes from in Origin, or (when the page's
    Referrer-Policy is no-referrer, as ours is, and Origin reads "null") in Sec-Fetch-Site; a client that sends
    neither is no browser, so no other site can have made it send the request."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin", "null")
    if origin == "null":
        return True
    ours = {origin_of(str(request.base_url))} | ({origin_of(site_url)} if site_url else set())
    return origin in ours


def origin_of(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def lifespan(receive, send, on_startup, on_shutdown) -> None:
    """ASGI lifespan: start the background work, and stop it and close the stores at shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            on_startup()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await on_shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


def route_path(scope: dict) -> str:
    """The path below --root-path (uvicorn puts the root path in front of `path`, as ASGI says)."""
    path, root_path = scope["path"], scope.get("root_path", "")
    if root_path and path.startswith(root_path + "/"):
        return path[len(root_path) :]
    return path


def masked(address: str) -> str:
    """`a•••@example.org`: enough for the reader to recognise, not enough for a log to leak."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}•••@{domain}"
