"""The viewer's HTTP server: the standard library's ThreadingHTTPServer over `ViewApp` routes."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from vla_data.errors import VlaDataError

from .app import ViewApp
from .dataset_api import NotFound


def make_handler(app: ViewApp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = unquote(urlsplit(self.path).path)
            try:
                response = app.get(path)
                status, body, content_type = 200, response.body, response.content_type
            except NotFound as e:
                status, body, content_type = 404, _error(e), "application/json"
            except VlaDataError as e:
                status, body, content_type = 400, _error(e), "application/json"
            except Exception as e:  # a broken view must not take the server down; the page shows why
                status, body, content_type = 500, _error(e), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header(
                "Cache-Control", "no-cache" if content_type == "application/json" else "max-age=60"
            )
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # noqa: A002
            pass  # one line per frame request would drown the terminal

    return Handler


def _error(error: Exception) -> bytes:
    return json.dumps(
        {"error": f"{type(error).__name__}: {error}" if not isinstance(error, VlaDataError) else str(error)}
    ).encode()


class ViewServer:
    """`ViewApp` served on host:port (port 0 picks a free one); `with ViewServer(...) as s: s.url`."""

    def __init__(self, app: ViewApp, host: str = "127.0.0.1", port: int = 8000):
        self.app = app
        self.httpd = ThreadingHTTPServer((host, port), make_handler(app))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def start(self) -> ViewServer:
        """Serve from a background thread (tests, notebooks)."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
        self.httpd.server_close()

    def __enter__(self) -> ViewServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
