"""The package's imports form a DAG with `cli` on top, as docs/architecture.md describes."""

from __future__ import annotations

import ast
import unittest
from pathlib import Path
from typing import Dict, Set

import thinkbank_dev

PACKAGE = Path(thinkbank_dev.__file__).parent


def internal_imports() -> Dict[str, Set[str]]:
    """{module: the package modules it imports with `from .x import ...`}."""
    graph = {}
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        graph[path.stem] = {node.module for node in ast.walk(tree)
                            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module}
    return graph


class LayersTest(unittest.TestCase):
    def test_there_is_no_import_cycle(self):
        graph = internal_imports()
        done: Set[str] = set()

        def visit(module: str, stack: tuple) -> None:
            if module in stack:
                self.fail(f"import cycle: {' -> '.join(stack + (module,))}")
            if module in done:
                return
            for dep in graph.get(module, ()):
                visit(dep, stack + (module,))
            done.add(module)

        for module in graph:
            visit(module, ())

    def test_only_the_entry_points_import_cli(self):
        importers = {m for m, deps in internal_imports().items() if "cli" in deps}
        self.assertEqual(importers, {"__main__"})

    def test_every_module_says_what_it_is_for(self):
        for path in PACKAGE.glob("*.py"):
            with self.subTest(module=path.name):
                self.assertTrue(ast.get_docstring(ast.parse(path.read_text())))


if __name__ == "__main__":
    unittest.main()
