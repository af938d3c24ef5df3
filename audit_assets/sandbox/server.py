"""Serves an emulator as a real HTTP server on 127.0.0.1, for subprocess tests and benchmarks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from audit_assets.sandbox.world import Emulator


def _handler_for(emulator: Emulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real platforms offer

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            host = self.headers.get(
                "host", f"{self.server.server_address[0]}:{self.server.server_address[1]}"
            )
            request = httpx.Request(
                self.command,
                f"http://{host}{self.path}",
                headers=[(k, v) for k, v in self.headers.items() if k.lower() != "host"],
                content=self.rfile.read(length) if length else b"",
            )
            try:
                response = emulator.handle(request)
            except httpx.RemoteProtocolError:
                self.close_connection = True  # an injected disconnect: drop without answering
                return
            body = response.content
            self.send_response(response.status_code)
            for key, value in response.headers.items():
                if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(key, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: object) -> None:  # quiet: tests read the emulator instead
            return

    return Handler


@contextmanager
def serve(emulator: Emulator, port: int = 0) -> Iterator[str]:
    """Run ``emulator`` on 127.0.0.1 and yield its base URL; stop it on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(emulator))
    server.daemon_threads = True
    # A short poll: shutdown() waits for the loop to notice, and tests start and stop many servers.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="sandbox-server", daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main() -> None:
    """``python -m audit_assets.sandbox.server``: serve the Meta emulator until interrupted."""
    import argparse

    from audit_assets.sandbox.meta import MetaGraphSandbox
    from audit_assets.sandbox.world import SandboxAccount

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--accounts", type=int, default=2, help="active ad accounts")
    parser.add_argument("--audiences", type=int, default=8, help="audiences per account")
    args = parser.parse_args()
    accounts = [
        SandboxAccount(f"{1000000001 + i}", f"Sandbox account {i + 1}", audiences=args.audiences)
        for i in range(args.accounts)
    ]
    with serve(MetaGraphSandbox(accounts), port=args.port) as url:
        print(url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
