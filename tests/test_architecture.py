"""The architecture holds: import-linter's contracts (layers, the Airflow shell, the pure core) and no import
cycle between any two modules of ``mlops``, imports inside functions included (docs/architecture.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "plugins" / "mlops"
#: Modules allowed over ~500 lines, each with its reason in docs/architecture.md ("Large modules").
LARGE_MODULES: dict[str, int] = {
    "mlops.config.schema": 1500,
    "mlops.config.reference": 650,
    "mlops.serving.inference_log": 610,
    "mlops.tooling.stack": 700,
    "mlops.airflow.alerts": 600,
}


def test_import_linter_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "3 kept, 0 broken" in result.stdout


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles_between_modules() -> None:
    graph = grimp.build_graph("mlops", exclude_type_checking_imports=True)
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle() -> None:
    """The check above can fail: a two-module cycle added to a copy of the graph is found."""
    graph = grimp.build_graph("mlops", exclude_type_checking_imports=True)
    graph.add_import(importer="mlops.core.gate", imported="mlops.core.slices")
    assert ["mlops.core.gate", "mlops.core.slices"] in _cycles(graph)


def test_every_package_says_what_it_owns() -> None:
    undocumented = []
    for init in sorted(PACKAGE.rglob("__init__.py")):
        source = init.read_text(encoding="utf-8").lstrip()
        if not source.startswith('"""') or len(source.split('"""')[1].strip()) < 40:
            undocumented.append(str(init.relative_to(REPO)))
    assert undocumented == []


def test_modules_stay_small_or_say_why() -> None:
    too_long = {}
    for module in sorted(PACKAGE.rglob("*.py")):
        lines = len(module.read_text(encoding="utf-8").splitlines())
        name = ".".join(module.relative_to(PACKAGE.parent).with_suffix("").parts)
        if lines > 550 and lines > LARGE_MODULES.get(name, 0):
            too_long[name] = lines
    assert too_long == {}, (
        "over ~500 lines: split the module, or list it with its reason in docs/architecture.md"
    )
