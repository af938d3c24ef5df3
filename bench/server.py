"""The benchmarks' platform: the Meta emulator as a real HTTP server, fast enough not to be the bottleneck.

The emulator generates every audience on each request, which would make the server, not the client, the
limit of every measurement. Here each answer is generated once and replayed byte for byte (the warm-up
pass fills the cache), and ``--latency`` adds a fixed delay to every answer, as a distant API would.

    python -m bench.server --accounts 4 --audiences 50000 [--latency 0.05]   # prints its base URL
"""

from __future__ import annotations

import argparse
import threading
import time

import httpx

from audit_assets.sandbox.meta import MetaGraphSandbox
from audit_assets.sandbox.server import serve
from audit_assets.sandbox.world import Emulator, Fault, SandboxAccount


class ReplayingEmulator(Emulator):
    """Answers each distinct request once through the emulator, then from memory; optionally late."""

    def __init__(self, inner: Emulator, latency: float) -> None:
        super().__init__(None, inner.today)
        self._inner = inner
        self._latency = latency
        self._answers: dict[str, tuple[int, list[tuple[str, str]], bytes]] = {}
        self._cache_lock = threading.Lock()

    def respond(self, request: httpx.Request) -> httpx.Response:
        key = str(request.url)
        with self._cache_lock:
            answer = self._answers.get(key)
        if answer is None:
            response = self._inner.handle(request)
            answer = (response.status_code, list(response.headers.items()), response.content)
            with self._cache_lock:
                self._answers[key] = answer
        if self._latency:
            time.sleep(self._latency)
        status, headers, content = answer
        return httpx.Response(status, headers=headers, content=content)

    def fault_response(self, request: httpx.Request, fault: Fault) -> httpx.Response:
        raise NotImplementedError("the benchmark server injects no faults")


def accounts(count: int, audiences: int) -> list[SandboxAccount]:
    return [
        SandboxAccount(f"{1000000001 + i}", f"Bench account {i + 1}", audiences=audiences)
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=4)
    parser.add_argument("--audiences", type=int, default=50_000, help="audiences per account")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    args = parser.parse_args()
    emulator = ReplayingEmulator(MetaGraphSandbox(accounts(args.accounts, args.audiences)), args.latency)
    with serve(emulator) as url:
        print(url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
