"""`newsletter preview`: the review page served on loopback, rebuilt whenever a source file changes.

Standard library only: a ThreadingHTTPServer bound to 127.0.0.1 and a watcher thread that polls modification
times (edition folder, templates, newsletter.toml) twice a second. The page polls /version and reloads itself.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ..base.errors import CheckFailed, NewsletterError
from ..base.ports import cannot_listen
from ..base.workspace import Workspace
from ..edition.load import edition_folder
from ..edition.pipeline import preview_edition
from ..edition.render import PACKAGE_TEMPLATES
from .review import ReviewData, review_data, review_page
from .toolchecks import run_tool_checks

POLL_SECONDS = 0.5


class PreviewServer:
    """Serve the review page of one edition; `serve_forever()` blocks, `start()` runs it in a thread."""

    def __init__(self, edition: str, workspace: Callable[[], Workspace], port: int = 8025, tools: bool = True) -> None:
        """`workspace` reads the newsletter's settings: again at every rebuild, so an edit of newsletter.toml or
        .env shows at once, as an edit of an article does."""
        self.edition = edition
        self.workspace = workspace
        self.root = workspace().root
        self.tools = tools
        self.version = 0
        self.page = ""
        self._serving = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        try:  # the port first: a busy one is reported at once, before seconds of building and checking
            self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        except OSError as error:
            raise cannot_listen("127.0.0.1", port, error) from None
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self._publish(ReviewData(str(edition), building=True))
        self.version = 0
        self._watcher = threading.Thread(target=self._watch, daemon=True)  # builds first, then watches
        self._watcher.start()

    def _watched(self) -> dict[Path, float]:
        roots = [self.root / "templates", PACKAGE_TEMPLATES]
        with contextlib.suppress(NewsletterError):  # a missing edition is shown on the page; keep watching
            roots.append(edition_folder(self.edition, self.root))
        files = [p for folder in roots if folder.is_dir() for p in folder.rglob("*") if p.is_file()]
        files += [self.root / "newsletter.toml", self.root / ".env"]
        return {p: p.stat().st_mtime_ns for p in files if p.exists()}

    def _watch(self) -> None:
        seen = self._watched()
        self._rebuild()
        while not self._stop.wait(POLL_SECONDS):
            now = self._watched()
            if now != seen:
                seen = now
                self._rebuild()

    def _rebuild(self) -> None:
        """Build the page now (built-in checks), publish it, then again with the real-tool checks."""
        try:
            preview = preview_edition(self.edition, self.workspace())
        except CheckFailed as failed:
            self._publish(ReviewData(str(self.edition), core_problems=failed.problems,
                                     error=f"{len(failed.problems)} check(s) failed, listed below"))  # fmt: skip
            return
        except NewsletterError as error:
            self._publish(ReviewData(str(self.edition), error=str(error)))
            return
        self._publish(review_data(preview))
        if self.tools:
            self._publish(review_data(preview, run_tool_checks(preview.html, preview.message.data, self.root)))

    def _publish(self, data: ReviewData) -> None:
        page = review_page(data, live=True)
        with self._lock:
            self.page = page
            self.version += 1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    page, version = server.page, server.version
                if self.path == "/version":
                    self._send(str(version), "text/plain")
                elif self.path in ("/", "/index.html"):
                    self._send(page, "text/html; charset=utf-8")
                else:
                    self.send_error(404)

            def _send(self, body: str, kind: str) -> None:
                data = body.encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def serve_forever(self) -> None:
        self._serving = True
        self.httpd.serve_forever()

    def start(self) -> None:
        self._serving = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        if self._serving:  # shutdown() waits for serve_forever, so only call it when that runs
            self.httpd.shutdown()
        self.httpd.server_close()
