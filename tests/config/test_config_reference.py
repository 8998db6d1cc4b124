"""The config reference is generated from the schema: committed files are fresh, complete and agree with pydantic."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from mlops.config import load_config, parse_config
from mlops.config.reference import json_schema, main, render_markdown, schema_text, slug
from mlops.errors import ConfigError

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "pipeline-config.md"
SCHEMA = REPO / "include" / "pipelines" / "pipeline.schema.json"
EXAMPLES = sorted((REPO / "include" / "pipelines").glob("*.yaml"))
MODELINE = "# yaml-language-server: $schema=./pipeline.schema.json"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json_schema()


@pytest.fixture(scope="module")
def page(schema: dict[str, Any]) -> str:
    return render_markdown(schema)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    committed = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(committed)
    return jsonschema.Draft202012Validator(committed)


def _models(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"PipelineConfig": schema, **schema["$defs"]}


def _code_blocks(markdown: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", markdown, flags=re.MULTILINE | re.DOTALL)


def _section(markdown: str, heading: str) -> str:
    return markdown.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


# The committed files are what the schema generates ---------------------------------------------------------------
def _assert_fresh(path: Path, expected: str) -> None:
    """A short failure (the first line that differs), not a diff of a 1,500-line page."""
    committed = path.read_text(encoding="utf-8") if path.is_file() else ""
    if committed == expected:
        return
    old, new = committed.splitlines(), expected.splitlines()
    same = [a == b for a, b in zip(old, new, strict=False)]
    line = same.index(False) + 1 if False in same else len(same) + 1
    pytest.fail(
        f"{path.relative_to(REPO)} is stale (first difference at line {line}): the schema or a reference_*.md "
        "template changed. "
        "Run `mlops config reference` and commit the result."
    )


def test_reference_page_is_up_to_date(page: str) -> None:
    _assert_fresh(DOCS, page)


def test_json_schema_file_is_up_to_date(schema: dict[str, Any]) -> None:
    _assert_fresh(SCHEMA, schema_text(schema))


def test_check_names_a_stale_file_and_writing_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs, schema_file = tmp_path / "docs" / "pipeline-config.md", tmp_path / "pipeline.schema.json"
    paths = ["--docs", str(docs), "--schema", str(schema_file)]
    assert main(["--check", *paths]) == 1  # neither file exists yet
    assert main(paths) == 0
    assert main(["--check", *paths]) == 0
    docs.write_text(docs.read_text(encoding="utf-8") + "hand edit\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["--check", *paths]) == 1
    stderr = capsys.readouterr().err
    assert str(docs) in stderr and "mlops config reference" in stderr
    assert str(schema_file) not in stderr


# The schema documents itself ---------------------------------------------------------------------------------------
def test_schema_is_titled_and_names_its_dialect(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"]
    jsonschema.Draft202012Validator.check_schema(schema)


def test_every_model_and_every_field_has_a_description(schema: dict[str, Any]) -> None:
    missing = [
        f"{model}.{name}"
        for model, definition in _models(schema).items()
        for name, prop in definition["properties"].items()
        if not prop.get("description", "").strip()
    ]
    missing += [model for model, definition in _models(schema).items() if not definition.get("description")]
    assert not missing, f"describe these in plugins/mlops/config/schema.py: {missing}"


def test_every_field_has_a_row_in_the_page(schema: dict[str, Any], page: str) -> None:
    rows = set(re.findall(r'^\| (?:<a id="[^"]+"></a>)?`(\w+)` \|', page, flags=re.MULTILINE))
    missing = [
        f"{model}.{name}"
        for model, definition in _models(schema).items()
        for name in definition["properties"]
    ]
    assert not [field for field in missing if field.split(".")[1] not in rows]


# The page's links and anchors --------------------------------------------------------------------------------------
def _anchors(markdown: str) -> list[str]:
    fenced, anchors = False, []
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            anchors.append(slug(line.lstrip("#")))
    return anchors + re.findall(r'<a id="([^"]+)"></a>', markdown)


def test_anchors_are_unique_and_every_link_in_the_page_resolves(page: str) -> None:
    anchors = _anchors(page)
    assert len(anchors) == len(set(anchors)), sorted({a for a in anchors if anchors.count(a) > 1})
    broken = sorted(set(re.findall(r"\]\(#([^)]+)\)", page)) - set(anchors))
    assert not broken, f"links to missing anchors: {broken}"


def test_anchors_other_docs_link_to_still_exist(page: str) -> None:
    anchors = set(_anchors(page))
    linking = [*(REPO / "docs").glob("*.md"), REPO / "README.md"]
    wanted = {
        (path.name, anchor)
        for path in linking
        for anchor in re.findall(r"pipeline-config\.md#([\w-]+)", path.read_text(encoding="utf-8"))
    }
    assert ("serving.md", "deploy") in wanted
    assert not [link for link in wanted if link[1] not in anchors]


def test_yaml_snippets_in_the_page_parse(page: str) -> None:
    for snippet in _code_blocks(page, "yaml"):
        yaml.safe_load(snippet)


@pytest.mark.parametrize("heading", ["Complete minimal example", "Complete full example"])
def test_complete_examples_in_the_page_are_valid(
    page: str, heading: str, validator: jsonschema.Draft202012Validator
) -> None:
    (example,) = _code_blocks(_section(page, heading), "yaml")
    document = yaml.safe_load(example)
    assert not [error.message for error in validator.iter_errors(document)]
    parse_config(document)


# Files against the JSON schema, and against pydantic ---------------------------------------------------------------
def test_there_are_example_configs() -> None:
    assert {path.stem for path in EXAMPLES} >= {"breast_cancer", "demand_forecast", "fraud_detection"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_names_the_schema_validates_and_loads(
    path: Path, validator: jsonschema.Draft202012Validator
) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == MODELINE
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(yaml.safe_load(text))
    ]
    assert not errors
    assert load_config(path).name == path.stem


def _broken(example: dict[str, Any], change: str) -> dict[str, Any]:
    document = json.loads(json.dumps(example))
    if change == "unknown top-level field":
        document["epochs"] = 3
    elif change == "unknown nested field":
        document.setdefault("training", {})["epochs"] = 3
    elif change == "value not in the enum":
        document["task"] = "classifcation"
    elif change == "out of range":
        document.setdefault("airflow", {})["retries"] = 20
    elif change == "required field missing":
        del document["gate"]["threshold"]
    elif change == "wrong type":
        document["features"] = "all"
    return document


@pytest.mark.parametrize(
    "change",
    [
        "unknown top-level field",
        "unknown nested field",
        "value not in the enum",
        "out of range",
        "required field missing",
        "wrong type",
    ],
)
def test_a_broken_file_fails_the_json_schema_and_pydantic(
    change: str, validator: jsonschema.Draft202012Validator
) -> None:
    example = yaml.safe_load(EXAMPLES[0].read_text(encoding="utf-8"))
    document = _broken(example, change)
    assert list(validator.iter_errors(document)), f"the JSON schema accepts a file with a {change}"
    with pytest.raises(ConfigError):
        parse_config(document)
