"""HTML from the package's Jinja2 templates: the one environment every page and email body is rendered with.

Owns: the Jinja2 environment of the package and :func:`render`. Templates live in ``mlops/templates``
(``*.html.j2``; pages extend ``_page.html.j2``, which inlines their CSS: nothing is fetched, they render
offline). Every value a template prints is escaped (autoescape), so text from a config, MLflow, a batch or an
exception cannot inject markup; HTML meant as HTML must arrive as ``markupsafe.Markup``. A variable the
template uses but the caller did not pass fails the render (``StrictUndefined``) instead of printing nothing.

Jinja2 is imported on first render: ``mlops.config`` is imported at DAG parse time.

Example:
    >>> from mlops.config.templating import render
    >>> render("alert_email.html.j2", colour="#b42318", label="FAILURE", pipeline="churn",
    ...        title="<b>x</b>", rows=[], summary_label="Error", summary="", links=[])  # doctest: +ELLIPSIS
    '<html>...[FAILURE] churn: &lt;b&gt;x&lt;/b&gt;</h3>...'
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

__all__ = ["TEMPLATE_DIR", "environment", "render"]

#: The templates' folder inside the ``mlops`` package (shipped as package data).
TEMPLATE_DIR = "templates"


@functools.cache
def environment() -> jinja2.Environment:
    """The package's Jinja2 environment (built once per process).

    Returns:
        An environment loading ``mlops/templates``, autoescaping every template, strict about undefined
        variables, and trimming the whitespace around block tags so templates can be indented freely.
    """
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("mlops", TEMPLATE_DIR),
        # Every template is HTML; ``default=True`` also escapes one whose name says otherwise.
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "j2"), default_for_string=True, default=True
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(template_name: str, **context: Any) -> str:
    """Render one template of ``mlops/templates`` with autoescape on.

    Args:
        template_name: File name in ``mlops/templates``, e.g. ``"model_card.html.j2"``.
        **context: The template's variables; plain values are escaped when printed.

    Returns:
        The rendered text.

    Raises:
        jinja2.TemplateNotFound: No template of that name.
        jinja2.UndefinedError: The template uses a variable (or attribute) the context does not provide.
    """
    return environment().get_template(template_name).render(**context)
