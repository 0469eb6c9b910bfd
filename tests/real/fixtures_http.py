"""A loopback HTTP server (127.0.0.1 only) that serves in-memory files, with injectable failures."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    """What the server does for one path. Counters let tests check what the client asked for."""

    data: bytes
    cut_after: int | None = None  # send only this many bytes of the first full response, then drop
    cuts_left: int = 1
    fail_times: int = 0  # answer 503 this many times first
    status: int | None = None  # always answer this status (e.g. 403)
    content_type: str = "application/octet-stream"
    honour_range: bool = True
    requests: list[str | None] = field(default_factory=list)  # Range header of each request


class Server:
    def __init__(self) -> None:
        self.files: dict[str, Behaviour] = {}
        handler = self._handler()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def add(self, path: str, data: bytes, **options) -> Behaviour:
        behaviour = Behaviour(data=data, **options)
        self.files["/" + path.lstrip("/")] = behaviour
        return behaviour

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                behaviour = server.files.get(self.path)
                if behaviour is None:
                    self.send_error(404)
                    return
                range_header = self.headers.get("Range")
                behaviour.requests.append(range_header)
                if behaviour.status is not None:
                    self._send(behaviour.status, b"<html>login</html>", "text/html")
                    return
                if behaviour.fail_times > 0:
                    behaviour.fail_times -= 1
                    self._send(503, b"busy", "text/plain")
                    return
                data, start = behaviour.data, 0
                if range_header and behaviour.honour_range:
                    start = int(range_header.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Type", behaviour.content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if behaviour.cut_after is not None and behaviour.cuts_left > 0:
                    behaviour.cuts_left -= 1
                    self.wfile.write(body[: behaviour.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


@contextlib.contextmanager
def serve() -> Iterator[Server]:
    """Run a :class:`Server` in a thread for the duration of the block."""
    server = Server()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
