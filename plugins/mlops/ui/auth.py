"""Who is calling: the Airflow user behind a request's JWT, checked with Airflow's own validation.

A plugin's FastAPI app is mounted on the API server WITHOUT Airflow's authentication, so every route of ours
depends on :func:`airflow_user`. It accepts what Airflow's own REST API accepts, in the same order:

1. an ``Authorization: Bearer <JWT>`` header (a token from ``POST /auth/token``);
2. the ``_token`` cookie that the Airflow UI sets at login (so the page works inside the UI's iframe).

The token is validated by Airflow's ``get_user`` (signature, expiry, audience, revocation), then the user
must be allowed to see the custom view "Models" by the configured auth manager. Airflow's modules are
imported inside the functions: this module is imported wherever plugins load, the API server only calls it.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials

#: The name of the custom view, as auth managers see it (``is_authorized_custom_view``).
RESOURCE_NAME = "Models"


class LoginRequired(HTTPException):
    """No valid token on a request for a page: the app answers with a redirect to Airflow's login."""


def _bearer(request: Request) -> HTTPAuthorizationCredentials | None:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return HTTPAuthorizationCredentials(scheme=scheme, credentials=credentials.strip())


async def airflow_user(request: Request) -> Any:
    """The authenticated Airflow user of ``request``, allowed to read the Models view.

    Raises:
        HTTPException: 401 without a token or with an expired one, 403 with an invalid token or a user the
            auth manager does not allow on the view.
    """
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.core_api.security import get_user

    user = await get_user(request=request, _oauth_token=None, bearer_credentials=_bearer(request))
    if not get_auth_manager().is_authorized_custom_view(method="GET", resource_name=RESOURCE_NAME, user=user):
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail=f"user '{user.get_name()}' may not read the {RESOURCE_NAME} view",
        )
    return user


async def page_user(request: Request) -> Any:
    """Like :func:`airflow_user`, for HTML pages: a missing, expired or invalid token asks for a login."""
    try:
        return await airflow_user(request)
    except HTTPException as exc:
        if exc.status_code == status.HTTP_401_UNAUTHORIZED or (
            exc.status_code == status.HTTP_403_FORBIDDEN and exc.detail == "Invalid JWT token"
        ):
            raise LoginRequired(status_code=exc.status_code, detail=exc.detail) from exc
        raise


def login_url(request: Request) -> str:
    """Airflow's login page, coming back to the page asked for (a path: Airflow accepts only local ones)."""
    from airflow.api_fastapi.app import get_auth_manager

    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return get_auth_manager().get_url_login(next_url=back)
