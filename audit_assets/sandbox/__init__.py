"""A built-in emulator of each platform's real wire format, serving generated audiences.

It is a test double of the *platforms*, never of our code: clients talk HTTP to it through httpx,
either in-process (hosts under ``sandbox.invalid``, see audit_assets.sandbox_hosts) or as a real HTTP
server on 127.0.0.1. It is chosen like any other implementation of a platform's API, in one place
(resources.py); no other production module imports it.
"""
