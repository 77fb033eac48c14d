"""`newsletter serve`: the public web service beside the sends. An ASGI app (Starlette) served by uvicorn.

Routes, and nothing else:
    GET  /                       the archive: sent editions, newest first (every edition with --drafts)
    GET  /feed.xml               the archive as an Atom feed
    GET  /EDITION/               an edition's web version (no personal data)
    GET  /unsubscribe/TOKEN      a page naming the list, with a button; changes nothing (link scanners GET)
    POST /unsubscribe/TOKEN      RFC 8058 one-click (body `List-Unsubscribe=One-Click`) and that button:
                                 the address is durably suppressed before the 200; a repeat changes nothing
    POST /resubscribe/TOKEN      the undo button of the confirmation page, for UNDO_SECONDS

Everything here is public: every token is verified (a tampered, truncated or foreign one gets a plain 4xx page
and changes nothing), request bodies are capped, nothing outside these routes is served (edition names follow
the one name rule and must be editions the archive lists), responses carry CSP, X-Content-Type-Options and
Referrer-Policy, and the log names no address and no token. No cookies, no redirects, no JavaScript.

Suppressions from many simultaneous POSTs are written in groups: while one transaction syncs to disk, the next
ones queue, and go into the following transaction together, so a burst costs a few fsyncs, not one each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
from email import message_from_bytes, policy
from pathlib import Path

from .archive import FEED, Pages, archive_entries, archive_entry, feed_xml, web_version
from .config import load_publication
from .errors import ConfigError, NewsletterError
from .load import ISSUES_DIR, check_edition_name
from .model import Publication
from .suppressions import SuppressionStore, store_path
from .tokens import read_undo_token, read_unsubscribe_token, undo_token, unsubscribe_keys

log = logging.getLogger("newsletter.serve")
MAX_BODY = 4096
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class _GroupWriter:
    """Suppressions from concurrent requests, written a group per transaction; each caller waits for its own
    entry to be on disk."""

    def __init__(self, store: SuppressionStore) -> None:
        self.store = store
        self.waiting: list[tuple[str, asyncio.Future]] = []
        self.busy = False

    async def suppress(self, address: str, source: str) -> None:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((address, future))
        if not self.busy:
            self.busy = True
            asyncio.get_running_loop().create_task(self._drain(source))
        await future

    async def _drain(self, source: str) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting, []
                try:
                    await asyncio.to_thread(self.store.add_many, [(a, "unsubscribe", source) for a, _ in batch])
                except Exception as error:
                    for _, future in batch:
                        future.set_exception(error)
                else:
                    for _, future in batch:
                        future.set_result(None)
        finally:
            self.busy = False


def create_app(root: Path, drafts: bool = False, publication: Publication | None = None):
    """The ASGI application for the publication in `root`."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, Response
    from starlette.routing import Route

    publication = publication or load_publication(root)
    if not publication.unsubscribe_secret:
        raise ConfigError("NEWSLETTER_UNSUBSCRIBE_SECRET must be set for `serve`: it verifies the unsubscribe links")
    keys = unsubscribe_keys(publication.unsubscribe_secret)
    store = SuppressionStore(store_path(root))
    writer = _GroupWriter(store)
    cache: dict[str, tuple[float, str]] = {}
    pages = Pages(root, publication)

    def html(body: str, status: int = 200) -> Response:
        return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)

    def refusal(status: int, heading: str, text: str) -> Response:
        return html(pages.page(heading, [text]), status)

    def invalid_link() -> Response:
        return refusal(400, "This link is not valid",
                       "The link may have been cut short or changed. Use the unsubscribe link in the most recent "
                       "email, or reply to that email and ask to be removed.")  # fmt: skip

    async def body_of(request: Request) -> bytes | None:
        """The request body, or None when it is larger than MAX_BODY (read no further)."""
        if int(request.headers.get("content-length") or 0) > MAX_BODY:
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def archive(request: Request) -> Response:
        entries = await asyncio.to_thread(archive_entries, root, drafts)
        return html(pages.index(entries))

    async def feed(request: Request) -> Response:
        entries = await asyncio.to_thread(archive_entries, root, drafts)
        site = publication.site_url or str(request.base_url).rstrip("/")
        return Response(feed_xml(publication, entries, site), media_type="application/atom+xml",
                        headers=SECURITY_HEADERS)  # fmt: skip

    async def edition(request: Request) -> Response:
        name = request.path_params["edition"]
        try:
            check_edition_name(name)
        except NewsletterError:
            return refusal(404, "Not found", "There is no such page.")
        if await asyncio.to_thread(archive_entry, root, name, drafts) is None:
            return refusal(404, "Not found", "There is no such edition.")
        stamp = _newest_change(root, name)
        if name not in cache or cache[name][0] != stamp:
            cache[name] = (stamp, await asyncio.to_thread(web_version, root, publication, name))
        return html(cache[name][1])

    async def unsubscribe(request: Request) -> Response:
        token = request.path_params["token"]
        address = read_unsubscribe_token(keys, publication.list_id, token)
        if request.method != "POST":
            if address is None:
                return invalid_link()
            return html(pages.page(f"Unsubscribe from {publication.name}?",
                             [f"{_masked(address)} will get no more emails from {publication.name}."],
                             form={"action": "", "button": "Unsubscribe"}))  # fmt: skip
        body = await body_of(request)
        if body is None:
            return refusal(413, "Request too large", "The request was larger than an unsubscribe needs.")
        if address is None:
            return invalid_link()
        if not _is_one_click(request.headers.get("content-type", ""), body):
            why = "Use the button on the unsubscribe page, or your mail program's unsubscribe button."
            return refusal(400, "Not an unsubscribe request", why)
        await writer.suppress(address, "one-click (RFC 8058)")
        log.info("unsubscribed %s", _masked(address))
        undo = undo_token(keys, publication.list_id, address)
        return html(pages.page("You are unsubscribed",
                         [f"{_masked(address)} will get no more emails from {publication.name}.",
                          "Changed your mind? You can undo this for the next seven days."],
                         form={"action": f"../resubscribe/{undo}", "button": "Undo: subscribe me again"}))  # fmt: skip

    async def resubscribe(request: Request) -> Response:
        body = await body_of(request)
        if body is None:
            return refusal(413, "Request too large", "The request was larger than this needs.")
        address = read_undo_token(keys, publication.list_id, request.path_params["token"])
        if address is None:
            return refusal(400, "This link has expired or is not valid",
                           "Undo works for seven days after unsubscribing. To subscribe again, sign up on our "
                           "website.")  # fmt: skip
        await asyncio.to_thread(store.remove, address, ("unsubscribe",))
        log.info("resubscribed %s", _masked(address))
        again = f"{_masked(address)} will get {publication.name} again, starting with the next edition."
        return html(pages.page("You are subscribed again", [again]))

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        return refusal(status, "Not found" if status == 404 else "Not allowed", "There is no such page.")

    routes = [
        Route("/", archive, methods=["GET", "HEAD"]),
        Route(f"/{FEED}", feed, methods=["GET", "HEAD"]),
        Route("/unsubscribe/{token}", unsubscribe, methods=["GET", "HEAD", "POST"]),
        Route("/resubscribe/{token}", resubscribe, methods=["POST"]),
        Route("/{edition}/", edition, methods=["GET", "HEAD"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        store.close()

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found}, lifespan=lifespan)
    app.router.redirect_slashes = False  # only the routes above; no redirects to guess paths with
    app.state.store = store
    return app


def _is_one_click(content_type: str, body: bytes) -> bool:
    """RFC 8058: the body carries List-Unsubscribe=One-Click, form-urlencoded or multipart/form-data."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        return fields.get("List-Unsubscribe") == ["One-Click"]
    if kind == "multipart/form-data":
        message = message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body,
                                     policy=policy.HTTP)  # fmt: skip
        for part in message.iter_parts() if message.is_multipart() else []:
            if part.get_param("name", header="content-disposition") == "List-Unsubscribe":
                return part.get_content().strip() == "One-Click"
    return False


def _masked(address: str) -> str:
    """`a•••@example.org`: enough for the reader to recognise, not enough for a log to leak."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}•••@{domain}"


def _newest_change(root: Path, name: str) -> float:
    folder = root / ISSUES_DIR / name
    files = [*folder.glob("*"), root / "newsletter.toml", *(root / "templates").glob("*")]
    return max((f.stat().st_mtime for f in files if f.is_file()), default=0.0)


def run_server(root: Path, host: str = "127.0.0.1", port: int = 8080, drafts: bool = False,
               root_path: str = "", proxy: bool = False) -> None:  # fmt: skip
    """Serve until interrupted (uvicorn), printing where."""
    import uvicorn

    from .capture import ensure_free

    app = create_app(root, drafts)
    ensure_free(host, port)
    print(f"serving {load_publication(root).name} on http://{host}:{port}{root_path}/ (Ctrl-C to stop)", flush=True)
    uvicorn.run(app, host=host, port=port, root_path=root_path, access_log=False, log_level="warning",
                proxy_headers=proxy, forwarded_allow_ips="*" if proxy else None, server_header=False,
                date_header=True, timeout_graceful_shutdown=5)  # fmt: skip
