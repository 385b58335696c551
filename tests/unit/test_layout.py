"""The tests' own layout: conftest.py is for fixtures and pytest hooks, which pytest injects, so no module imports
from it; plain helpers and constants live in tests/helpers.py and are imported from there."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

SCANNED = ("tests", "benchmarks")


def _modules() -> list[Path]:
    return sorted(
        path for folder in SCANNED for path in (REPO_ROOT / folder).rglob("*.py") if ".venv" not in path.parts
    )


def _is_conftest(name: str) -> bool:
    return name == "conftest" or name.endswith(".conftest")


def conftest_imports(source: str) -> list[tuple[int, str]]:
    """(line, statement) for each import of a conftest module, or of a name from one, in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            if any(_is_conftest(alias.name) for alias in node.names):
                found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if _is_conftest(module) or any(alias.name == "conftest" for alias in node.names):
                found.append((node.lineno, ast.unparse(node)))
    return found


@pytest.mark.parametrize(
    "source",
    [
        "from tests.conftest import REPO_ROOT",
        "import tests.conftest",
        "import conftest as c",
        "from conftest import new_store",
        "from tests import conftest",
        "from . import conftest",
        "from ..conftest import DEFAULT_CONFIG",
        "def f():\n    from tests.conftest import DEFAULT_CONFIG",
    ],
)
def test_the_check_catches_each_form_of_conftest_import(source):
    assert conftest_imports(source)


def test_the_check_lets_other_imports_through():
    assert not conftest_imports("from tests.helpers import REPO_ROOT\nimport pytest\nfrom . import helpers")


def test_no_module_imports_from_conftest():
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{line}: {statement}"
        for path in _modules()
        for line, statement in conftest_imports(path.read_text())
    ]
    assert _modules(), "no modules found to check"
    assert not offenders, "import these from tests.helpers instead:\n" + "\n".join(offenders)


def test_conftest_holds_only_fixtures_and_hooks():
    tree = ast.parse((REPO_ROOT / "tests" / "conftest.py").read_text())
    plain = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and not node.name.startswith("pytest_")
        and not any("fixture" in ast.unparse(decorator) for decorator in node.decorator_list)
    ]
    assert not plain, f"move these plain functions to tests/helpers.py: {plain}"
