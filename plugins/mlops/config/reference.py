"""The pipeline config reference, generated from the pydantic schema: the JSON schema and the Markdown page.

``PipelineConfig`` and its parts in ``mlops.config.schema`` are the single source of truth. Every field's
``description`` and ``examples`` and every model's docstring are Markdown; this module renders them, between the
hand-written ``reference_intro.md`` and ``reference_outro.md`` next to it, into ``docs/pipeline-config.md``, and
ships the JSON schema as ``include/pipelines/pipeline.schema.json`` for editors (the example YAMLs name it in a
``yaml-language-server`` modeline).

Regenerate both after changing the schema or a template::

    mlops config reference            # or: python -m mlops.config.reference
    mlops config reference --check    # exit status 1, naming the stale file, when a committed file is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue

from mlops.config import settings
from mlops.config.schema import PipelineConfig
from mlops.errors import MlopsError

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_TITLE = "MLOps pipeline config"
DOCS_PATH = Path("docs") / "pipeline-config.md"
SCHEMA_PATH = Path("include") / "pipelines" / "pipeline.schema.json"
TEMPLATE_DIR = Path(__file__).resolve().parent
REGENERATE = "mlops config reference"
#: Where the intro template wants the table of contents (else it follows the intro).
CONTENTS_MARKER = "<!-- contents -->"
#: A mapping's key in paths: ``expectations.columns.<name>.min``.
KEY_PLACEHOLDER = "<name>"
#: Longest one-line list or mapping in a YAML snippet, and where long strings are folded.
_FLOW_WIDTH = 100
_SIMPLE_PLURALS = {"string": "strings", "integer": "integers", "number": "numbers", "boolean": "booleans"}


class _DeclaredOrderExamples(GenerateJsonSchema):
    """Pydantic's generator, but examples keep the key order they were written in (as YAML snippets read)."""

    def _sort_recursive(self, value: Any, parent_key: str | None = None) -> Any:
        if parent_key == "examples":
            return value
        return super()._sort_recursive(value, parent_key)


def json_schema() -> dict[str, Any]:
    """The JSON schema (draft 2020-12) of a pipeline file: ``PipelineConfig.model_json_schema()``, titled.

    Returns:
        The schema with ``$schema``, ``title`` and ``description`` first and ``$defs`` last.
    """
    generated: JsonSchemaValue = PipelineConfig.model_json_schema(schema_generator=_DeclaredOrderExamples)
    head = {"$schema": JSON_SCHEMA_DIALECT, "title": SCHEMA_TITLE}
    body = {key: value for key, value in generated.items() if key not in ("title", "$defs")}
    return head | body | {"$defs": generated.get("$defs", {})}


def schema_text(schema: dict[str, Any]) -> str:
    """The schema as the committed file holds it: indented JSON, one trailing newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


# The model tree ------------------------------------------------------------------------------------------------
@dataclass
class _Occurrence:
    """One place a model is used: the YAML path down to it and the field that leads there."""

    path: tuple[str, ...]  # keys, "[]" for a list item, KEY_PLACEHOLDER for a mapping's value
    field_schema: dict[str, Any]


@dataclass
class _Section:
    """One model, rendered as one section of the page."""

    name: str  # the key in $defs ("" for the top level)
    schema: dict[str, Any]
    occurrences: list[_Occurrence] = field(default_factory=list)
    heading: str = ""
    anchor: str = ""
    explicit_anchor: bool = False

    @property
    def shared(self) -> bool:
        """Used at more than one place (it is then named by its title, not by a path)."""
        return len(self.occurrences) > 1

    @property
    def path(self) -> tuple[str, ...]:
        return self.occurrences[0].path if self.occurrences else ()

    def row_id(self, name: str) -> str:
        """The anchor of a field's row in this section's table."""
        if self.shared:
            return f"{self.anchor}-{slug(name)}"
        return slug(display_path((*self.path, name)))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def display_path(path: Sequence[str]) -> str:
    """``("gate", "slices", "[]", "bins")`` as ``gate.slices[].bins``."""
    text = ""
    for part in path:
        text += part if part == "[]" or not text else f".{part}"
    return text


def _model_refs(prop: dict[str, Any]) -> Iterator[tuple[str, tuple[str, ...]]]:
    """The models a field's schema refers to, each with the path suffix to reach it (``[]``, a key)."""
    if "$ref" in prop:
        yield prop["$ref"].rsplit("/", 1)[-1], ()
    for option in prop.get("anyOf", []):
        yield from _model_refs(option)
    if isinstance(prop.get("items"), dict):
        for name, suffix in _model_refs(prop["items"]):
            yield name, ("[]", *suffix)
    if isinstance(prop.get("additionalProperties"), dict):
        for name, suffix in _model_refs(prop["additionalProperties"]):
            yield name, (KEY_PLACEHOLDER, *suffix)


def _has_model(prop: dict[str, Any]) -> bool:
    """Whether a field holds a model (which then has its own section)."""
    return next(_model_refs(prop), None) is not None


def _sections(schema: dict[str, Any]) -> list[_Section]:
    """Every model once, depth first in the order of the fields (so the page follows a YAML file's order)."""
    defs = schema.get("$defs", {})
    root = _Section(name="", schema=schema, heading="Top-level fields", anchor=slug("Top-level fields"))
    found: dict[str, _Section] = {}
    order: list[_Section] = [root]

    def visit(model: dict[str, Any], path: tuple[str, ...]) -> None:
        for name, prop in model.get("properties", {}).items():
            for ref, suffix in _model_refs(prop):
                occurrence = _Occurrence((*path, name, *suffix), prop)
                if ref in found:
                    found[ref].occurrences.append(occurrence)
                    continue
                found[ref] = section = _Section(name=ref, schema=defs[ref], occurrences=[occurrence])
                order.append(section)
                visit(defs[ref], occurrence.path)

    visit(schema, ())
    for section in order[1:]:
        if section.shared:
            section.heading = _humanize(section.name).capitalize()
            section.anchor = slug(section.heading)
            continue
        section.heading = f"`{display_path(section.path)}`"
        # A mapping's section is found at its container's anchor: `expectations.columns` -> #expectationscolumns.
        container = section.path[:-1] if section.path[-1] in ("[]", KEY_PLACEHOLDER) else section.path
        section.anchor = slug(display_path(container))
        section.explicit_anchor = slug(section.heading) != section.anchor
    return order


def _humanize(name: str) -> str:
    """``InferenceLogSettings`` as ``inference log settings``."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()


# Cells ---------------------------------------------------------------------------------------------------------
def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _bounds(prop: dict[str, Any], kind: str) -> str:
    low = ("≥", prop["minimum"]) if "minimum" in prop else None
    low = (">", prop["exclusiveMinimum"]) if "exclusiveMinimum" in prop else low
    high = ("≤", prop["maximum"]) if "maximum" in prop else None
    high = ("<", prop["exclusiveMaximum"]) if "exclusiveMaximum" in prop else high
    if low and high:
        flipped = {"≥": "≤", ">": "<"}[low[0]]
        return f"{kind}, {_number(low[1])} {flipped} x {high[0]} {_number(high[1])}"
    if low:
        return f"{kind} {low[0]} {_number(low[1])}"
    if high:
        return f"{kind} {high[0]} {_number(high[1])}"
    return kind


def _enum(values: list[Any]) -> str:
    return " \\| ".join(f"`{value}`" for value in values)


class _Renderer:
    """Renders cells and sections; knows where each model's section is."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.defs: dict[str, Any] = schema.get("$defs", {})
        self.sections = _sections(schema)
        self.by_name = {section.name: section for section in self.sections if section.name}

    # Types ---------------------------------------------------------------------------------------------------
    def type_of(self, prop: dict[str, Any], plural: bool = False) -> str:
        """A field's type in words, with its constraints and enums; models link to their section."""
        if "$ref" in prop:
            section = self.by_name[prop["$ref"].rsplit("/", 1)[-1]]
            words = _humanize(section.name) + ("s" if plural else "")
            return f"[{words}](#{section.anchor})"
        if "anyOf" in prop:
            options = [option for option in prop["anyOf"] if option.get("type") != "null"]
            nullable = len(options) < len(prop["anyOf"])
            text = " or ".join(self.type_of(option, plural) for option in options)
            return f"{text} or null" if nullable else text
        if "enum" in prop:
            return _enum(prop["enum"])
        if "const" in prop:
            return f"`{prop['const']}`"
        kind = str(prop.get("type", "any"))
        if kind == "array":
            items = prop.get("items", {})
            text = f"list of {self.type_of(items, plural=True)}" if items else "list"
            if "minItems" in prop:
                text += f", at least {prop['minItems']}"
            return text
        if kind == "object":
            values = prop.get("additionalProperties")
            if isinstance(values, dict) and values:
                return f"mapping of name → {self.type_of(values)}"
            return "mapping"
        if kind == "string":
            if prop.get("pattern"):
                return f"string matching `{prop['pattern']}`"
            text = "non-empty string" if prop.get("minLength") == 1 else "string"
            return text + ("s" if plural else "")
        if kind in ("integer", "number"):
            text = _bounds(prop, kind)
            return _SIMPLE_PLURALS[kind] if plural and text == kind else text
        return _SIMPLE_PLURALS.get(kind, kind) if plural else kind

    # Defaults ------------------------------------------------------------------------------------------------
    def model_defaults(self, name: str) -> dict[str, Any] | None:
        """What a model's default instance dumps to, when every field has a default."""
        props = self.defs[name].get("properties", {})
        if any("default" not in prop for prop in props.values()):
            return None
        return {key: prop["default"] for key, prop in props.items()}

    def default_of(self, prop: dict[str, Any]) -> str:
        if "default" not in prop:
            return ""
        value = prop["default"]
        if "$ref" in prop and value == self.model_defaults(prop["$ref"].rsplit("/", 1)[-1]):
            return "its fields' defaults"
        return f"`{flow_yaml(value)}`"

    # Sections ------------------------------------------------------------------------------------------------
    def fields_table(self, section: _Section) -> str:
        required = set(section.schema.get("required", []))
        lines = ["| Field | Type | Default | Required | Description |", "| --- | --- | --- | --- | --- |"]
        for name, prop in section.schema.get("properties", {}).items():
            # A field that holds a model links to its section; any other field's row is a link target.
            label = f"`{name}`" if _has_model(prop) else f'<a id="{section.row_id(name)}"></a>`{name}`'
            description = prop.get("description", "")
            if len(prop.get("examples", [])) > 1:
                description += " Examples: " + ", ".join(f"`{flow_yaml(e)}`" for e in prop["examples"]) + "."
            cells = [
                label,
                self.type_of(prop),
                self.default_of(prop),
                "**yes**" if name in required else "no",
                _cell(description),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def example(self, section: _Section) -> list[str]:
        """YAML snippets: the examples of the fields that lead here, else one made of this model's fields'."""
        snippets = [
            snippet_yaml(_nest(occurrence.path, example, wrap_last=False))
            for occurrence in section.occurrences
            for example in occurrence.field_schema.get("examples", [])
        ]
        if snippets:
            return snippets
        merged = {
            name: prop["examples"][0]
            for name, prop in section.schema.get("properties", {}).items()
            if prop.get("examples") and not _has_model(prop)
        }
        return [snippet_yaml(_nest(section.path, merged, wrap_last=True))] if merged else []

    def section(self, section: _Section) -> str:
        parts = []
        if section.explicit_anchor:
            parts.append(f'<a id="{section.anchor}"></a>\n')
        parts.append(f"### {section.heading}\n")
        if section.schema.get("description"):
            parts.append(section.schema["description"].strip() + "\n")
        if section.shared:
            places = ", ".join(f"`{display_path(o.path)}`" for o in section.occurrences)
            parts.append(f"Used at {places}.\n")
        elif section.path and section.path[-1] == "[]":
            parts.append(f"`{display_path(section.path[:-1])}` is a list; each item has these fields:\n")
        elif section.path and section.path[-1] == KEY_PLACEHOLDER:
            container = display_path(section.path[:-1])
            parts.append(f"`{container}` maps each key (`{KEY_PLACEHOLDER}`) to these fields:\n")
        parts.append(self.fields_table(section) + "\n")
        for snippet in self.example(section):
            parts.append(f"```yaml\n{snippet}```\n")
        return "\n".join(parts)

    def glance_rows(self, model: dict[str, Any], path: tuple[str, ...], owner: _Section) -> Iterator[str]:
        """One row per field, nested models right after the field that holds them (shared ones once)."""
        required = set(model.get("required", []))
        for name, prop in model.get("properties", {}).items():
            refs = list(_model_refs(prop))
            field_path = (*path, name)
            target = self.by_name[refs[0][0]] if refs else None
            anchor = target.anchor if target else owner.row_id(name)
            default = "**required**" if name in required else self.default_of(prop)
            yield f"| [`{display_path(field_path)}`](#{anchor}) | {self.type_of(prop)} | {default} |"
            if target and not target.shared:
                yield from self.glance_rows(target.schema, target.path, target)


def _cell(text: str) -> str:
    """Markdown that fits in one table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _nest(path: Sequence[str], value: Any, *, wrap_last: bool) -> Any:
    """``value`` placed at ``path`` in an otherwise empty document, for a YAML snippet.

    With ``wrap_last`` the value is one item (of a list) or one value (of a mapping) when the path ends in one.
    """
    parts = list(path)
    if not wrap_last:
        while parts and parts[-1] in ("[]", KEY_PLACEHOLDER):
            parts.pop()
    for part in reversed(parts):
        value = [value] if part == "[]" else {part: value}
    return value


# YAML ----------------------------------------------------------------------------------------------------------
class _FlowMapping(dict):  # type: ignore[type-arg]
    """A small mapping written on one line: ``{name: x, type: numeric}``."""


class _FlowSequence(list):  # type: ignore[type-arg]
    """A short list of scalars written on one line: ``[failure, rejected]``."""


class _FlowDumper(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML has no type stubs here
    """Strings double-quoted when YAML would read them as something else (or they look like cron)."""


class _SnippetDumper(_FlowDumper):
    """Block style with indented lists; long strings folded; short leaves on one line."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = None
    implicit = dumper.resolve(yaml.ScalarNode, data, (True, False))
    if implicit != "tag:yaml.org,2002:str" or "*" in data or data.startswith("@"):  # a date, "yes", cron
        style = '"'
    elif isinstance(dumper, _SnippetDumper) and len(data) > _FLOW_WIDTH - 10 and data.isprintable():
        style = ">"
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


def _represent_flow_sequence(dumper: yaml.SafeDumper, data: _FlowSequence) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", list(data), flow_style=True)


def _represent_flow_mapping(dumper: yaml.SafeDumper, data: _FlowMapping) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", dict(data), flow_style=True)


_FlowDumper.add_representer(str, _represent_str)
_SnippetDumper.add_representer(_FlowSequence, _represent_flow_sequence)
_SnippetDumper.add_representer(_FlowMapping, _represent_flow_mapping)


def _is_leaf(value: Any) -> bool:
    """A mapping of scalars and lists of scalars, none holding a ``:`` (which a flow mapping would quote)."""
    items = [item for v in value.values() for item in (v if isinstance(v, list) else [v])]
    return all(not isinstance(item, (dict, list)) and ":" not in str(item) for item in items)


def _flow_leaves(value: Any, depth: int = 0, in_list: bool = False) -> Any:
    """Mark the short lists of scalars, and the short leaf mappings below the top, to be written on one line."""
    short = len(flow_yaml(value)) <= _FLOW_WIDTH
    if isinstance(value, list):
        if value and short and all(not isinstance(item, (dict, list)) for item in value):
            return _FlowSequence(value)
        return [_flow_leaves(item, depth + 1, in_list=True) for item in value]
    if not isinstance(value, dict):
        return value
    if value and short and _is_leaf(value) and (in_list or depth >= 2):
        return _FlowMapping(value)
    return {key: _flow_leaves(item, depth + 1) for key, item in value.items()}


def flow_yaml(value: Any) -> str:
    """A value as YAML on one line: ``[failure, rejected]``, ``{method: psi, threshold: 0.2}``, ``'2026-01-01'``."""
    text = str(
        yaml.dump(
            value,
            Dumper=_FlowDumper,
            default_flow_style=True,
            width=10_000,
            allow_unicode=True,
            sort_keys=False,
        )
    )
    return text.strip().removesuffix("...").strip()


def snippet_yaml(document: Any) -> str:
    """A document as a readable YAML snippet (block style, small leaves on one line)."""
    return str(
        yaml.dump(
            _flow_leaves(document),
            Dumper=_SnippetDumper,
            sort_keys=False,
            allow_unicode=True,
            width=_FLOW_WIDTH,
            default_flow_style=False,
        )
    )


# The page ------------------------------------------------------------------------------------------------------
def _h2_headings(markdown: str) -> list[str]:
    """The ``## `` headings of a Markdown text, outside code fences."""
    headings: list[str] = []
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("## "):
            headings.append(line[3:].strip())
    return headings


def _template(name: str) -> str:
    return (TEMPLATE_DIR / name).read_text(encoding="utf-8").strip("\n")


def _link(heading: str, anchor: str | None = None) -> str:
    return f"[{heading}](#{anchor or slug(heading)})"


def render_markdown(schema: dict[str, Any]) -> str:
    """The reference page: the intro template, contents, every field at a glance and by model, the outro.

    Args:
        schema: The JSON schema of a pipeline file, as :func:`json_schema` returns it.

    Returns:
        The Markdown text of ``docs/pipeline-config.md``.
    """
    renderer = _Renderer(schema)
    intro, outro = _template("reference_intro.md"), _template("reference_outro.md")
    sections = renderer.sections

    intro_headings = _h2_headings(intro.split(CONTENTS_MARKER, 1)[-1])
    contents = ["**Contents**", ""]
    contents += [f"* {_link(h)}" for h in intro_headings]
    contents += [f"* {_link('All fields at a glance')}", f"* {_link('Field reference')}"]
    contents += [f"  * {_link(s.heading, s.anchor)}" for s in sections]
    contents += [f"* {_link(h)}" for h in _h2_headings(outro)]
    contents_text = "\n".join(contents)

    if CONTENTS_MARKER in intro:
        intro = intro.replace(CONTENTS_MARKER, contents_text)
    else:
        intro = f"{intro}\n\n{contents_text}"

    glance = [
        "## All fields at a glance",
        "",
        "Every field, in the order of a pipeline file; each links to its description.",
        "",
        "| Field | Type | Required / default |",
        "| --- | --- | --- |",
        *renderer.glance_rows(schema, (), sections[0]),
    ]
    reference = [
        "## Field reference",
        "",
        "One section per part of the file, in the order of a pipeline file. *Required* fields must be given; "
        "every other field can be left out and takes its default.",
        "",
        *(renderer.section(section) for section in sections),
    ]
    banner = (
        f"<!-- Generated by `{REGENERATE}` from plugins/mlops/config/schema.py and the templates "
        "plugins/mlops/config/reference_intro.md and reference_outro.md. Edit those, not this file. -->"
    )
    page = "\n\n".join([banner, intro, "\n".join(glance), "\n".join(reference).rstrip("\n"), outro])
    return re.sub(r"\n{3,}", "\n\n", page) + "\n"


# Files ---------------------------------------------------------------------------------------------------------
def default_paths() -> tuple[Path, Path]:
    """``docs/pipeline-config.md`` and ``include/pipelines/pipeline.schema.json`` of this checkout.

    Raises:
        MlopsError: The package is not installed from a checkout (give the paths explicitly).
    """
    root = settings.repo_root()
    if root is None:
        raise MlopsError(
            "not in a checkout of the kit: give the paths of the reference page and the JSON schema"
        )
    return root / DOCS_PATH, root / SCHEMA_PATH


def expected_files(docs_path: str | Path, schema_path: str | Path) -> dict[Path, str]:
    """What the reference page and the JSON schema file must hold, by path."""
    schema = json_schema()
    return {Path(docs_path): render_markdown(schema), Path(schema_path): schema_text(schema)}


def stale_files(docs_path: str | Path, schema_path: str | Path) -> list[Path]:
    """The files (of the two) that are missing or differ from what would be generated."""
    return [
        path
        for path, text in expected_files(docs_path, schema_path).items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]


def write(docs_path: str | Path, schema_path: str | Path) -> list[Path]:
    """Write the reference page and the JSON schema file; return the files that changed.

    Args:
        docs_path: Where the Markdown page goes (``docs/pipeline-config.md``).
        schema_path: Where the JSON schema goes (``include/pipelines/pipeline.schema.json``).

    Returns:
        The paths whose content changed (empty when both were up to date).
    """
    changed = []
    for path, text in expected_files(docs_path, schema_path).items():
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        changed.append(path)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mlops.config.reference [--check] [--docs PATH] [--schema PATH]``; the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m mlops.config.reference",
        description="Generate docs/pipeline-config.md and include/pipelines/pipeline.schema.json from the schema.",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1, naming the stale files, instead of writing"
    )
    parser.add_argument("--docs", help=f"the Markdown page (default: <checkout>/{DOCS_PATH})")
    parser.add_argument("--schema", help=f"the JSON schema (default: <checkout>/{SCHEMA_PATH})")
    args = parser.parse_args(argv)
    if args.docs and args.schema:
        docs, schema = Path(args.docs), Path(args.schema)
    else:
        try:
            docs, schema = default_paths()
        except MlopsError as exc:
            parser.error(str(exc))
        docs, schema = Path(args.docs or docs), Path(args.schema or schema)
    if args.check:
        stale = stale_files(docs, schema)
        for path in stale:
            sys.stderr.write(f"stale: {path} differs from the schema; run `{REGENERATE}`\n")
        return 1 if stale else 0
    for path in write(docs, schema):
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
