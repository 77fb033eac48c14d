"""`newsletter serve`: the public web service beside the sends. An ASGI app (Starlette's requests and responses)
served by uvicorn.

Routes, and nothing else:
    GET  /                       the archive: sent editions, newest first (every edition with --drafts)
    GET  /feed.xml               the archive as an Atom feed
    GET  /EDITION/               an edition's web version (no personal data)
    GET  /unsubscribe/TOKEN      a page naming the list, with a button; changes nothing (link scanners GET)
    POST /unsubscribe/TOKEN      RFC 8058 one-click (body `List-Unsubscribe=One-Click`) and that button:
                                 the address is durably suppressed before the 200; a repeat changes nothing;
                                 the button gets a confirmation page with undo, a mail provider a short text
    POST /resubscribe/TOKEN      the undo button of the confirmation page, for UNDO_SECONDS

Everything here is public: every token is verified (a tampered, truncated or foreign one gets a plain 4xx page
and changes nothing), request bodies are capped, nothing outside these routes is served (edition names follow
the one name rule and must be editions the archive lists), responses carry CSP, X-Content-Type-Options and
Referrer-Policy, and the log names no address and no token. No cookies, no redirects, no JavaScript.

Suppressions from many simultaneous POSTs are written in groups (`groupcommit`): while one transaction syncs to
disk, the next ones queue, and go into the following transaction together, so a burst costs a few fsyncs, not
one each.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from email import message_from_bytes, policy

from ..audience.suppressions import StoreBusy, SuppressionStore
from ..audience.tokens import UNDO_SECONDS, read_undo_token, read_unsubscribe_token, required_keys, undo_token
from ..base.errors import NewsletterError
from ..base.workspace import Workspace
from ..delivery.groupcommit import GroupCommit
from ..edition.load import check_edition_name
from .archive import FEED, Pages, archive_entries, archive_entry, feed_base, feed_xml, web_version

log = logging.getLogger("newsletter.serve")
MAX_BODY = 4096
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


READ = ("GET", "HEAD")
ONE_CLICK_FIELD = ("List-Unsubscribe", "One-Click")  # RFC 8058
ONE_CLICK = "=".join(ONE_CLICK_FIELD).encode()  # the body exactly as mail providers send it
PAGE_FIELD = ("from", "page")  # what tells our unsubscribe page's button from a mail provider
UNSUBSCRIBE_FORM = (ONE_CLICK_FIELD, PAGE_FIELD)  # the hidden fields of that button


def route(path: str) -> tuple[str, str]:
    """(route, its parameter) for a request path, ("", "") for any path we do not serve. Exact matches only:
    no slash redirects, no path tricks (the server has already decoded %2F and dot segments do not match)."""
    if path == "/":
        return "archive", ""
    if path == f"/{FEED}":
        return "feed", ""
    parts = path.split("/")
    if len(parts) != 3 or parts[0] or not parts[1]:
        return "", ""
    if parts[1] in ("unsubscribe", "resubscribe"):
        return (parts[1], parts[2]) if parts[2] else ("", "")
    return ("edition", parts[1]) if not parts[2] else ("", "")


def create_app(workspace: Workspace, drafts: bool = False):
    """The ASGI application for the publication of `workspace`.

    Starlette's requests and responses under a dispatch of its own: five fixed routes need no router, and
    Starlette's application layers (router, error and exception middleware) cost a quarter of the CPU time of a
    one-click POST (benchmarks/serve.py). What they did is here: 404 and 405 pages, a plain 500 page for a bug,
    and the lifespan that closes the store."""
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, PlainTextResponse, Response

    publication = workspace.publication
    keys = required_keys(publication.unsubscribe_secret, "serve")
    feed_base(publication)  # a missing public address is said at start, not as a failing request
    store = SuppressionStore(workspace.suppressions, wait=0)  # never let SQLite's wait stop the event loop

    def write_suppressions(entries: list[tuple[str, str, str]]) -> list[None]:
        store.add_many(entries)
        return [None] * len(entries)

    writer = GroupCommit(write_suppressions)  # concurrent one-clicks share a transaction
    cache: dict[str, tuple[float, str]] = {}
    pages = Pages(workspace)
    unsubscribed = PlainTextResponse(f"Unsubscribed from {publication.name}.", headers=SECURITY_HEADERS)

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
        while True:  # ASGI's receive, not Request.stream(): an async generator costs a tenth of a one-click
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def archive(request: Request, _: str) -> Response:
        entries = await asyncio.to_thread(archive_entries, workspace, drafts)
        return html(pages.index(entries))

    async def feed(request: Request, _: str) -> Response:
        entries = await asyncio.to_thread(archive_entries, workspace, drafts)
        return Response(feed_xml(publication, entries, feed_base(publication)), media_type="application/atom+xml",
                        headers=SECURITY_HEADERS)  # fmt: skip

    async def edition(request: Request, name: str) -> Response:
        try:
            check_edition_name(name)
        except NewsletterError:
            return refusal(404, "Not found", "There is no such page.")
        if await asyncio.to_thread(archive_entry, workspace, name, drafts) is None:
            return refusal(404, "Not found", "There is no such edition.")
        stamp = _newest_change(workspace, name)
        if name not in cache or cache[name][0] != stamp:
            cache[name] = (stamp, await asyncio.to_thread(web_version, workspace, name))
        return html(cache[name][1])

    async def unsubscribe(request: Request, token: str) -> Response:
        address = read_unsubscribe_token(keys, publication.list_id, token)
        if request.method != "POST":
            if address is None:
                return invalid_link()
            return html(pages.page(f"Unsubscribe from {publication.name}?",
                             [f"{_masked(address)} will get no more emails from {publication.name}."],
                             form={"action": "", "button": "Unsubscribe", "fields": UNSUBSCRIBE_FORM}))  # fmt: skip
        body = await body_of(request)
        if body is None:
            return refusal(413, "Request too large", "The request was larger than an unsubscribe needs.")
        if address is None:
            return invalid_link()
        kind = _one_click(request.headers.get("content-type", ""), body)
        if kind is None:
            why = "Use the button on the unsubscribe page, or your mail program's unsubscribe button."
            return refusal(400, "Not an unsubscribe request", why)
        await patiently(writer.submit, (address, "unsubscribe", "one-click (RFC 8058)"))
        log.info("unsubscribed %s", _masked(address))
        if kind != "page":  # a mail provider's POST: nobody reads the answer, so it is short (and built once)
            return unsubscribed
        gone = [f"{_masked(address)} will get no more emails from {publication.name}."]
        since = await patiently(asyncio.to_thread, store.suppressed, address)
        if since is None or since.reason != "unsubscribe" or time.time() - since.at > UNDO_SECONDS:
            return html(pages.page("You are unsubscribed", gone))  # no undo for a bounce, or after the week
        # the undo lasts a week from the unsubscribe itself, however often the link is used again
        undo = {"action": f"../resubscribe/{undo_token(keys, publication.list_id, address, since.at)}",
                "button": "Undo: subscribe me again", "fields": ()}  # fmt: skip
        return html(
            pages.page(
                "You are unsubscribed", [*gone, "Changed your mind? You can undo this for seven days."], form=undo
            )
        )

    async def resubscribe(request: Request, token: str) -> Response:
        if not _same_origin(request, publication.site_url):
            return refusal(403, "Not allowed", "Undo works only from the button on our own confirmation page.")
        body = await body_of(request)
        if body is None:
            return refusal(413, "Request too large", "The request was larger than this needs.")
        address = read_undo_token(keys, publication.list_id, token)
        if address is None:
            return refusal(400, "This link has expired or is not valid",
                           "Undo works for seven days after unsubscribing. To subscribe again, sign up on our "
                           "website.")  # fmt: skip
        await patiently(asyncio.to_thread, store.remove, address, ("unsubscribe",))
        log.info("resubscribed %s", _masked(address))
        still = await patiently(asyncio.to_thread, store.suppressed, address)
        if still is not None:  # a bounce or a complaint is not the reader's to undo: say so, not "subscribed"
            return html(
                pages.page(
                    "Your unsubscribe is undone",
                    [
                        f"But {publication.name} still cannot mail {_masked(address)}: earlier mail to it "
                        f"{_STILL_SUPPRESSED.get(still.reason, 'was stopped')}. Reply to one of our emails to "
                        "sort it out."
                    ],
                )
            )
        again = f"{_masked(address)} will get {publication.name} again, starting with the next edition."
        return html(pages.page("You are subscribed again", [again]))

    routes = {  # each route's handler and the methods it answers; any other path is a 404, any other method a 405
        "archive": (archive, READ),
        "feed": (feed, READ),
        "unsubscribe": (unsubscribe, (*READ, "POST")),
        "resubscribe": (resubscribe, ("POST",)),
        "edition": (edition, READ),
    }

    async def respond(request: Request) -> Response:
        name, parameter = route(_route_path(request.scope))
        if not name:
            return refusal(404, "Not found", "There is no such page.")
        handler, methods = routes[name]
        if request.method not in methods:
            response = refusal(405, "Not allowed", "There is no such page.")
            response.headers["allow"] = ", ".join(methods)
            return response
        try:
            return await handler(request, parameter)
        except StoreBusy:
            response = refusal(503, "Busy", "Please try again in a moment.")
            response.headers["retry-after"] = "5"
            return response
        except Exception:
            log.exception("error answering a %s request to /%s/", request.method, name)
            return PlainTextResponse("Internal Server Error", status_code=500, headers=SECURITY_HEADERS)

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, store.close)
        elif scope["type"] == "http":
            request = Request(scope, receive)
            await (await respond(request))(scope, receive, send)

    return app


STORE_WAIT = 10.0  # how long a request waits for another process to let go of the suppression store
_STILL_SUPPRESSED = {"bounce": "bounced", "complaint": "was reported as spam", "manual": "was stopped by us"}


async def patiently(call, *args):
    """`await call(*args)`, again and again while the store is busy, yielding to the loop between tries, for
    up to STORE_WAIT seconds; then StoreBusy (a 503) for the caller."""
    loop = asyncio.get_running_loop()
    deadline, pause = loop.time() + STORE_WAIT, 0.005
    while True:
        try:
            return await call(*args)
        except StoreBusy:
            if loop.time() + pause > deadline:
                raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)


def _same_origin(request, site_url: str) -> bool:
    """A POST from our own pages. Browsers say where a POST comes from in Origin, or (when the page's
    Referrer-Policy is no-referrer, as ours is, and Origin reads "null") in Sec-Fetch-Site; a client that sends
    neither is no browser, so no other site can have made it send the request."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin", "null")
    if origin == "null":
        return True
    ours = {_origin(str(request.base_url))} | ({_origin(site_url)} if site_url else set())
    return origin in ours


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def _lifespan(receive, send, on_shutdown) -> None:
    """ASGI lifespan: nothing to start; close the store at shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            on_shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


def _route_path(scope: dict) -> str:
    """The path below --root-path (uvicorn puts the root path in front of `path`, as ASGI says)."""
    path, root_path = scope["path"], scope.get("root_path", "")
    if root_path and path.startswith(root_path + "/"):
        return path[len(root_path) :]
    return path


def _one_click(content_type: str, body: bytes) -> str | None:
    """RFC 8058: the body carries List-Unsubscribe=One-Click, form-urlencoded or multipart/form-data. Returns
    "page" for the button of our unsubscribe page (it also sends PAGE_FIELD), "" for a mail provider's POST,
    None for anything else."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        if body == ONE_CLICK:  # what mail providers send: no parsing needed
            return ""
        fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        if fields.get(ONE_CLICK_FIELD[0]) != [ONE_CLICK_FIELD[1]]:
            return None
        return "page" if fields.get(PAGE_FIELD[0]) == [PAGE_FIELD[1]] else ""
    if kind == "multipart/form-data":
        return _multipart_one_click(content_type, body)
    return None


def _multipart_one_click(content_type: str, body: bytes) -> str | None:
    """The one-click field of a multipart body; a body the email package cannot read (an unknown charset, a
    broken structure) is no one-click, never an error."""
    name, value = ONE_CLICK_FIELD
    try:
        header = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
        message = message_from_bytes(header + body, policy=policy.HTTP)
        for part in message.iter_parts() if message.is_multipart() else []:
            if part.get_param("name", header="content-disposition") == name:
                return "" if str(part.get_content()).strip() == value else None
    except (LookupError, ValueError, TypeError, UnicodeError, AttributeError):
        return None
    return None


def _masked(address: str) -> str:
    """`a•••@example.org`: enough for the reader to recognise, not enough for a log to leak."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}•••@{domain}"


def _newest_change(workspace: Workspace, name: str) -> float:
    """The newest change to an edition's files or the theme: a web version is rendered again after one."""
    files = [*(workspace.issues / name).glob("*"), *workspace.templates.glob("*")]
    return max((f.stat().st_mtime for f in files if f.is_file()), default=0.0)


REQUEST_TIMEOUT = 10.0  # seconds a connection has to send a whole request (slowloris)


def server_config(app, host: str = "127.0.0.1", port: int = 8080, root_path: str = "", proxy: bool = False,
                  request_timeout: float = REQUEST_TIMEOUT):  # fmt: skip
    """uvicorn's settings for `app`, the same for the command and the tests."""
    import uvicorn

    from .deadline import deadline_protocol

    return uvicorn.Config(app, host=host, port=port, root_path=root_path, access_log=False, log_level="warning",
                          proxy_headers=proxy, forwarded_allow_ips="*" if proxy else None, server_header=False,
                          date_header=True, timeout_graceful_shutdown=5, lifespan="on",
                          http=deadline_protocol(request_timeout))  # fmt: skip


def run_server(workspace: Workspace, host: str = "127.0.0.1", port: int = 8080, drafts: bool = False,
               root_path: str = "", proxy: bool = False) -> None:  # fmt: skip
    """Serve until interrupted (uvicorn), printing where."""
    import uvicorn

    from ..base.ports import ensure_free

    app = create_app(workspace, drafts)
    ensure_free(host, port)
    print(f"serving {workspace.publication.name} on http://{host}:{port}{root_path}/ (Ctrl-C to stop)", flush=True)
    uvicorn.Server(server_config(app, host, port, root_path, proxy)).run()
