"""The Models page as one server-rendered HTML document (template ``models_page.html.j2``).

Every value from a config or MLflow is escaped by the template (autoescape); the page inlines its CSS and the
one script that lets its links open a tab from inside the Airflow UI's sandboxed iframe.
"""

from __future__ import annotations

from collections.abc import Callable

from mlops.config.templating import render
from mlops.ui.chart import metric_chart
from mlops.ui.models import ModelsOverview

#: Builds the app's own URLs (reports) relative to the page: (kind, pipeline, key) -> href.
LinkBuilder = Callable[[str, str, str], str]

#: A status -> the colour class of its badge (no class: grey).
_BADGE = {
    "passed": "good",
    "champion": "good",
    "ok": "good",
    "rejected": "bad",
    "retrain": "bad",
    "rolled_back": "bad",
    "warn": "warn",
    "challenger": "info",
    "registered": "info",
}


def render_page(overview: ModelsOverview, links: LinkBuilder, user: str) -> str:
    """The whole page: config errors first, then one card per pipeline.

    Args:
        overview: What to show (from :func:`mlops.ui.models.models_overview`).
        links: Builds the URLs of the app's own endpoints (reports, the JSON API).
        user: The signed-in user's name, shown in the header.

    Returns:
        The HTML document.
    """
    return render(
        "models_page.html.j2",
        overview=overview,
        links=links,
        user=user,
        badges=_BADGE,
        chart=metric_chart,
    )
