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
    GET  /subscribe              the sign-up form; POST: a sign-up, from it or a form on the publisher's site
    GET|HEAD|POST /confirm/TOKEN double opt-in: a button, or a confirmation (see `signup` for which)
    POST /hooks/PROVIDER         bounce and complaint events of ses, postmark, mailgun, sendgrid (`hooks`),
                                 each verified; a provider without settings has none (404)

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

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from ..audience.suppressions import SuppressionStore
from ..audience.tokens import UNDO_SECONDS, read_undo_token, read_unsubscribe_token, required_keys, undo_token
from ..base.database import StoreBusy
from ..base.errors import NewsletterError
from ..base.workspace import Workspace
from ..delivery.groupcommit import GroupCommit
from ..edition.load import check_edition_name
from .archive import FEED, Pages, archive_entries, archive_entry, feed_base, feed_xml, web_version
from .hooks import HOOK_BODY, Hooks
from .http import (
    ONE_CLICK,
    ONE_CLICK_FIELD,
    PAGE_FIELD,
    READ,
    SECURITY_HEADERS,
    STILL_SUPPRESSED,
    UNSUBSCRIBE_FORM,
    lifespan,
    masked,
    patiently,
    read_body,
    route_path,
    same_origin,
)
from .mailer import Mailer
from .signup import SignUps

log = logging.getLogger("newsletter.serve")


def route(path: str) -> tuple[str, str]:
    """(route, its parameter) for a request path, ("", "") for any path we do not serve. Exact matches only:
    no slash redirects, no path tricks (the server has already decoded %2F and dot segments do not match)."""
    if path == "/":
        return "archive", ""
    if path in (f"/{FEED}", "/subscribe"):
        return ("feed" if path == f"/{FEED}" else "subscribe"), ""
    parts = path.split("/")
    if len(parts) != 3 or parts[0] or not parts[1]:
        return "", ""
    if parts[1] in ("unsubscribe", "resubscribe", "hooks", "confirm"):
        return (parts[1], parts[2]) if parts[2] else ("", "")
    return ("edition", parts[1]) if not parts[2] else ("", "")


def create_app(workspace: Workspace, drafts: bool = False) -> Site:
    """The ASGI application for the publication of `workspace` (`--drafts`: every edition is public)."""
    return Site(workspace, drafts)


class Site:
    """The ASGI application: Starlette's requests and responses under a dispatch of its own.

    A few fixed routes need no router, and Starlette's application layers (router, error and exception
    middleware) cost much of a one-click POST's CPU time (docs/benchmarks.md). What they did is here: 404 and
    405 pages, a plain 500 page for a bug, and the lifespan that closes the store. Each route is a method taking
    the request and the path's parameter, so a test can call the app through httpx's ASGITransport without a
    server."""

    def __init__(self, workspace: Workspace, drafts: bool = False) -> None:
        self.workspace, self.drafts = workspace, drafts
        self.publication = publication = workspace.publication
        self.keys = required_keys(publication.unsubscribe_secret, "serve")
        feed_base(publication)  # a missing public address is said at start, not as a failing request
        self.store = SuppressionStore(workspace.suppressions, wait=0)  # SQLite's wait would stop the event loop
        self.writer = GroupCommit(self._write_suppressions)  # concurrent one-clicks share a transaction
        self.cache: dict[str, tuple[float, str]] = {}
        self.pages = Pages(workspace)
        self.hooks = Hooks(workspace)  # a webhook setting that cannot work is said at start
        self.signups = SignUps(self)
        self.mailer = Mailer(workspace, self.signups.outbox, self.signups.wake)
        self.unsubscribed = PlainTextResponse(f"Unsubscribed from {publication.name}.", headers=SECURITY_HEADERS)
        self.routes = {  # each route's handler and the methods it answers: any other path is a 404, method a 405
            "archive": (self.archive, READ),
            "feed": (self.feed, READ),
            "unsubscribe": (self.unsubscribe, (*READ, "POST")),
            "resubscribe": (self.resubscribe, ("POST",)),
            "edition": (self.edition, READ),
            "hooks": (self.hook, ("POST",)),
            "subscribe": (self.signups.subscribe, (*READ, "POST")),
            "confirm": (self.signups.confirm, (*READ, "POST")),
        }

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, self.mailer.start, self._shut_down)
        elif scope["type"] == "http":
            request = Request(scope, receive)
            await (await self.respond(request))(scope, receive, send)

    async def _shut_down(self) -> None:
        await self.mailer.stop()
        self.signups.close()
        self.store.close()

    def _write_suppressions(self, entries: list[tuple[str, str, str]]) -> list[None]:
        self.store.add_many(entries)
        return [None] * len(entries)

    # --- answers ------------------------------------------------------------------------------------------------

    def html(self, body: str, status: int = 200) -> Response:
        return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)

    def refusal(self, status: int, heading: str, text: str) -> Response:
        return self.html(self.pages.page(heading, [text]), status)

    def invalid_link(self) -> Response:
        return self.refusal(400, "This link is not valid",
                            "The link may have been cut short or changed. Use the unsubscribe link in the most "
                            "recent email, or reply to that email and ask to be removed.")  # fmt: skip

    async def respond(self, request: Request) -> Response:
        name, parameter = route(route_path(request.scope))
        if not name:
            return self.refusal(404, "Not found", "There is no such page.")
        handler, methods = self.routes[name]
        if request.method not in methods:
            response = self.refusal(405, "Not allowed", "There is no such page.")
            response.headers["allow"] = ", ".join(methods)
            return response
        try:
            return await handler(request, parameter)
        except StoreBusy:
            response = self.refusal(503, "Busy", "Please try again in a moment.")
            response.headers["retry-after"] = "5"
            return response
        except Exception:
            log.exception("error answering a %s request to /%s/", request.method, name)
            return PlainTextResponse("Internal Server Error", status_code=500, headers=SECURITY_HEADERS)

    # --- the routes ---------------------------------------------------------------------------------------------

    async def archive(self, request: Request, _: str) -> Response:
        entries = await asyncio.to_thread(archive_entries, self.workspace, self.drafts)
        return self.html(self.pages.index(entries))

    async def feed(self, request: Request, _: str) -> Response:
        entries = await asyncio.to_thread(archive_entries, self.workspace, self.drafts)
        xml = feed_xml(self.publication, entries, feed_base(self.publication))
        return Response(xml, media_type="application/atom+xml", headers=SECURITY_HEADERS)

    async def edition(self, request: Request, name: str) -> Response:
        try:
            check_edition_name(name)
        except NewsletterError:
            return self.refusal(404, "Not found", "There is no such page.")
        if await asyncio.to_thread(archive_entry, self.workspace, name, self.drafts) is None:
            return self.refusal(404, "Not found", "There is no such edition.")
        stamp = _newest_change(self.workspace, name)
        if name not in self.cache or self.cache[name][0] != stamp:
            self.cache[name] = (stamp, await asyncio.to_thread(web_version, self.workspace, name))
        return self.html(self.cache[name][1])

    async def unsubscribe(self, request: Request, token: str) -> Response:
        """GET shows a button and changes nothing; POST (RFC 8058 one-click, or that button) suppresses."""
        publication = self.publication
        address = read_unsubscribe_token(self.keys, publication.list_id, token)
        if request.method != "POST":
            if address is None:
                return self.invalid_link()
            return self.html(self.pages.page(
                f"Unsubscribe from {publication.name}?",
                [f"{masked(address)} will get no more emails from {publication.name}."],
                form={"action": "", "button": "Unsubscribe", "fields": UNSUBSCRIBE_FORM}))  # fmt: skip
        body = await read_body(request)
        if body is None:
            return self.refusal(413, "Request too large", "The request was larger than an unsubscribe needs.")
        if address is None:
            return self.invalid_link()
        kind = _one_click(request.headers.get("content-type", ""), body)
        if kind is None:
            why = "Use the button on the unsubscribe page, or your mail program's unsubscribe button."
            return self.refusal(400, "Not an unsubscribe request", why)
        await patiently(self.writer.submit, (address, "unsubscribe", "one-click (RFC 8058)"))
        log.info("unsubscribed %s", masked(address))
        if kind != "page":  # a mail provider's POST: nobody reads the answer, so it is short (and built once)
            return self.unsubscribed
        return await self._unsubscribed_page(address)

    async def _unsubscribed_page(self, address: str) -> Response:
        """The confirmation, with an undo that lasts a week from the unsubscribe itself, however often the link
        is used again; none for a bounce, or after the week."""
        gone = [f"{masked(address)} will get no more emails from {self.publication.name}."]
        since = await patiently(asyncio.to_thread, self.store.suppressed, address)
        if since is None or since.reason != "unsubscribe" or time.time() - since.at > UNDO_SECONDS:
            return self.html(self.pages.page("You are unsubscribed", gone))
        undo = {"action": f"../resubscribe/{undo_token(self.keys, self.publication.list_id, address, since.at)}",
                "button": "Undo: subscribe me again", "fields": ()}  # fmt: skip
        more = "Changed your mind? You can undo this for seven days."
        return self.html(self.pages.page("You are unsubscribed", [*gone, more], form=undo))

    async def resubscribe(self, request: Request, token: str) -> Response:
        """The undo button: only from our own page, within the week, and truthful about what stays."""
        publication = self.publication
        if not same_origin(request, publication.site_url):
            return self.refusal(403, "Not allowed", "Undo works only from the button on our own confirmation page.")
        body = await read_body(request)
        if body is None:
            return self.refusal(413, "Request too large", "The request was larger than this needs.")
        address = read_undo_token(self.keys, publication.list_id, token)
        if address is None:
            return self.refusal(400, "This link has expired or is not valid",
                                "Undo works for seven days after unsubscribing. To subscribe again, sign up on our "
                                "website.")  # fmt: skip
        await patiently(asyncio.to_thread, self.store.remove, address, ("unsubscribe",))
        log.info("resubscribed %s", masked(address))
        still = await patiently(asyncio.to_thread, self.store.suppressed, address)
        if still is not None:  # a bounce or a complaint is not the reader's to undo: say so, not "subscribed"
            why = STILL_SUPPRESSED.get(still.reason, "was stopped")
            return self.html(self.pages.page("Your unsubscribe is undone", [
                f"But {publication.name} still cannot mail {masked(address)}: earlier mail to it {why}. Reply to "
                "one of our emails to sort it out."]))  # fmt: skip
        again = f"{masked(address)} will get {publication.name} again, starting with the next edition."
        return self.html(self.pages.page("You are subscribed again", [again]))

    async def hook(self, request: Request, provider: str) -> Response:
        """A provider's bounce and complaint events (`hooks`): verified, then recorded once each."""
        if not self.hooks.enabled(provider):
            return self.refusal(404, "Not found", "There is no such page.")
        body = await read_body(request, HOOK_BODY)
        if body is None:
            return PlainTextResponse("request too large", status_code=413, headers=SECURITY_HEADERS)
        status, text = await asyncio.to_thread(self.hooks.answer, provider, request.headers, body)
        headers = {**SECURITY_HEADERS, **({"www-authenticate": 'Basic realm="hooks"'} if status == 401 else {})}
        return PlainTextResponse(text, status_code=status, headers=headers)


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

    from ..base.ports import listening_socket

    app = create_app(workspace, drafts)
    listener = listening_socket(host, port)  # listening before it says so: no early client is refused
    print(f"serving {workspace.publication.name} on http://{host}:{port}{root_path}/ (Ctrl-C to stop)", flush=True)
    uvicorn.Server(server_config(app, host, port, root_path, proxy)).run(sockets=[listener])
