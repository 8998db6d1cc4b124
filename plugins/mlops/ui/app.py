"""The Models page's FastAPI app, mounted by the plugin on Airflow's API server (at ``/mlops`` by default).

Routes (every one needs an Airflow token, see :mod:`mlops.ui.auth`):

- ``GET /``: the page (HTML); without a valid token, a redirect to Airflow's login.
- ``GET /api/models``: the same data as JSON; without a valid token, 401/403 as JSON.
- ``GET /reports/{pipeline}/gate/{version}``: the gate's ``verdict.md`` of a version (text).
- ``GET /reports/{pipeline}/monitoring/{run_id}/{artifact}``: ``report.html`` (Evidently, sandboxed) or
  ``summary.json`` of a monitoring run.

The logic is in :mod:`mlops.ui.models`; this layer reads the request and shapes the response.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.background import BackgroundTask

from mlops.ui.auth import LoginRequired, airflow_user, login_url, page_user

ApiUser = Annotated[Any, Depends(airflow_user)]
PageUser = Annotated[Any, Depends(page_user)]

#: Evidently's report runs its own scripts: served from Airflow's origin, it is kept in a sandbox without
#: allow-same-origin, so it can neither read Airflow's pages nor call its API with the user's cookie.
REPORT_CSP = "sandbox allow-scripts allow-popups; frame-ancestors 'self'"
PAGE_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def _links(request: Request) -> Any:
    root = request.scope.get("root_path", "").rstrip("/")

    def build(kind: str, pipeline: str, key: str) -> str:
        pipeline, key = quote(pipeline, safe=""), quote(key, safe="")
        return {
            "api": f"{root}/api/models",
            "gate": f"{root}/reports/{pipeline}/gate/{key}",
            "monitoring": f"{root}/reports/{pipeline}/monitoring/{key}/report.html",
            "summary": f"{root}/reports/{pipeline}/monitoring/{key}/summary.json",
        }[kind]

    return build


def _with_links(data: dict[str, Any], request: Request) -> dict[str, Any]:
    build = _links(request)
    for pipeline in data["pipelines"]:
        if gate := pipeline.get("gate"):
            gate["report_url"] = (
                build("gate", pipeline["name"], str(gate["version"])) if gate["report_available"] else None
            )
        if monitoring := pipeline.get("monitoring"):
            run_id = monitoring["run_id"]
            monitoring["report_url"] = (
                build("monitoring", pipeline["name"], run_id) if monitoring["report_available"] else None
            )
            monitoring["summary_url"] = (
                build("summary", pipeline["name"], run_id) if monitoring["summary_available"] else None
            )
    return data


def _temporary_file(fetch: Any, media_type: str, headers: dict[str, str] | None = None) -> Response:
    """Download an artifact into a temporary folder, stream it, and remove the folder once sent."""
    from mlops.ui.models import ReportNotFound

    folder = tempfile.mkdtemp(prefix="mlops-ui-")
    try:
        path = fetch(folder)
    except ReportNotFound as exc:
        shutil.rmtree(folder, ignore_errors=True)
        return JSONResponse({"detail": str(exc)}, status_code=404, headers=PAGE_HEADERS)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        path,
        media_type=media_type,
        headers={**PAGE_HEADERS, **(headers or {})},
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


def create_app() -> FastAPI:
    app = FastAPI(
        title="MLOps Models",
        description="Champions, challengers, gate verdicts and monitoring decisions of every pipeline.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse(login_url(request), status_code=303, headers=PAGE_HEADERS)

    @app.get("/", response_class=HTMLResponse)
    def models_page(request: Request, user: PageUser) -> HTMLResponse:
        from mlops.ui.models import models_overview
        from mlops.ui.render import render_page

        html = render_page(models_overview(), _links(request), user.get_name())
        return HTMLResponse(html, headers=PAGE_HEADERS)

    @app.get("/api/models")
    def models_api(request: Request, user: ApiUser) -> JSONResponse:
        from mlops.ui.models import models_overview

        return JSONResponse(_with_links(models_overview().to_dict(), request), headers=PAGE_HEADERS)

    @app.get("/reports/{pipeline}/gate/{version}")
    def gate_report(pipeline: str, version: int, user: PageUser) -> Response:
        from mlops.ui.models import gate_report as fetch

        return _temporary_file(lambda folder: fetch(pipeline, version, folder), "text/plain; charset=utf-8")

    @app.get("/reports/{pipeline}/monitoring/{run_id}/{artifact}")
    def monitoring_report(pipeline: str, run_id: str, artifact: str, user: PageUser) -> Response:
        from mlops.ui.models import monitoring_artifact

        if artifact == "report.html":
            media_type, headers = "text/html; charset=utf-8", {"Content-Security-Policy": REPORT_CSP}
        else:
            media_type, headers = "application/json", {}
        return _temporary_file(
            lambda folder: monitoring_artifact(pipeline, run_id, artifact, folder), media_type, headers
        )

    return app
