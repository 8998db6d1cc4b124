"""The Airflow plugin: mounts the Models app on the API server and adds "Models" to the Airflow UI's nav.

Registered through the ``airflow.plugins`` entry point of our package (``pyproject.toml``), so any Airflow
that has the package installed finds it; ``airflow plugins`` lists it as ``mlops``.

Every Airflow process loads plugins (scheduler, DAG processor, workers): this module imports nothing but
Airflow's plugin base, and the FastAPI app is built only where it is asked for, on the API server.
"""

from __future__ import annotations

from functools import cache
from typing import Any
from urllib.parse import quote

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/mlops"
_ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="#718096" stroke-width="2">'
    '<path d="M12 2 3 7v10l9 5 9-5V7z"/><path d="m3 7 9 5 9-5M12 12v10"/></svg>'
)


@cache
def _app() -> Any:
    from mlops.ui.app import create_app

    return create_app()


class MlopsUIPlugin(AirflowPlugin):
    name = "mlops"
    external_views = [
        {
            "name": "Models",
            "href": f"{URL_PREFIX}/",
            "url_route": "models",
            "destination": "nav",
            "nav_top_level": True,
            "icon": "data:image/svg+xml;utf8," + quote(_ICON),
        }
    ]

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return [{"app": _app(), "url_prefix": URL_PREFIX, "name": "MLOps Models"}]
