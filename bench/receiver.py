"""A fast local callback receiver: records when each ``webhook-id`` first arrives."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """HTTP server on 127.0.0.1 (free port) answering 204 to every POST, in a thread."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.paths: dict[str, str] = {}
        self.bodies: dict[str, bytes] = {}
        self.headers: dict[str, dict[str, str]] = {}
        self.posts = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                now = time.time()
                webhook_id = self.headers.get("webhook-id", "")
                with receiver.lock:
                    receiver.posts += 1
                    if webhook_id and webhook_id not in receiver.arrivals:
                        receiver.arrivals[webhook_id] = now
                        receiver.paths[webhook_id] = self.path
                        receiver.bodies[webhook_id] = body
                        receiver.headers[webhook_id] = dict(self.headers.items())
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/ledger"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.arrivals) >= count:
                    return True
            time.sleep(0.02)
        return False
