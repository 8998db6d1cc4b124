"""One HTTP request to a server on this machine, answered as (status, body).

httpx with ``trust_env=False``: the benchmarks talk to 127.0.0.1 only, so no proxy setting of the environment
may reroute them. A new connection per call, closed after it: nothing stays open to a server while a load
generator measures it. An HTTP error status is an answer like any other; a failed connection raises
``httpx.TransportError``.
"""

from __future__ import annotations

import httpx

JSON = {"Content-Type": "application/json"}


def request(url: str, body: bytes | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    """``GET url`` (``POST`` of the JSON ``body`` when there is one): the status code and the body."""
    method = "GET" if body is None else "POST"
    answer = httpx.request(method, url, content=body, headers=JSON, timeout=timeout, trust_env=False)
    return answer.status_code, answer.content
