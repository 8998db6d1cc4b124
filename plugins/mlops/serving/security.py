"""What the model server refuses before a route runs: non-JSON POSTs, and callers without the right token.

- **JSON only.** A POST that carries a body must say ``Content-Type: application/json`` (a ``charset`` is
  fine); anything else gets 415. A browser sends ``text/plain``, ``application/x-www-form-urlencoded`` or
  ``multipart/form-data`` cross-site without asking the server first (a CORS "simple" request), and JSON only
  after a preflight this server never grants: so a web page cannot post to ``/predict``, ``/feedback`` or
  ``/admin/*``. A POST without a body and without a Content-Type (``curl -X POST .../admin/reload``) passes.
- **Tokens.** ``/admin/*`` wants ``Authorization: Bearer <admin token>`` and ``/feedback`` the feedback token
  (:mod:`mlops.config.settings`: ``MLOPS_SERVING_ADMIN_TOKEN``, ``MLOPS_SERVING_FEEDBACK_TOKEN``, or the token
  the server generated into ``<MLOPS_HOME>/serving.token``). Compared in constant time.
- **Hosts.** With ``MLOPS_SERVING_ALLOWED_HOSTS`` set, Starlette's ``TrustedHostMiddleware`` answers 400 to any
  other ``Host`` header (DNS rebinding).
"""

from __future__ import annotations

import hmac
import json
from typing import Any

JSON_TYPES = frozenset({"application/json"})


def is_json(content_type: str) -> bool:
    """``application/json`` with or without parameters (``; charset=utf-8``)."""
    return content_type.split(";", 1)[0].strip().lower() in JSON_TYPES


def bearer_ok(authorization: str | None, token: str | None) -> bool:
    """The header carries ``Bearer <token>`` (False when the server has no token: nothing is open by mistake)."""
    if not token or not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


class JsonOnlyMiddleware:
    """Pure ASGI middleware: 415 to a POST, PUT or PATCH whose body is not declared as JSON."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        length = headers.get(b"content-length", b"").strip()
        has_body = b"transfer-encoding" in headers or (length not in (b"", b"0"))
        if (content_type or has_body) and not is_json(content_type):
            shown = content_type[:60] or "none"
            body = json.dumps(
                {
                    "detail": f"send JSON with 'Content-Type: application/json' (got Content-Type: {shown})",
                    "code": "UNSUPPORTED_MEDIA_TYPE",
                    "field": "Content-Type",
                    "row": None,
                }
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 415,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", b"%d" % len(body)),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
