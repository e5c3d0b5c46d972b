"""Layers and cycles: no module imports a layer above its own, and no modules import each other in a loop.

The layers and what each may import are the table in docs/design.md ("Layers and imports"); the imports are
read from the source (``tests.support.imports``), lazy ones inside functions included.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.imports import (
    cycles,
    import_edges,
    layer_of,
    layer_violations,
    layers_from_doc,
    project_modules,
)

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "design.md"
PACKAGES = ("schedules", "service", "workers", "cli")


def _graph() -> tuple[dict[str, Path], list]:
    modules = project_modules(ROOT, PACKAGES)
    return modules, import_edges(modules)


def test_every_module_is_in_a_layer_of_the_design() -> None:
    layers = layers_from_doc(DESIGN.read_text())
    assert set(PACKAGES) <= set(layers), "docs/design.md's layer table must name every package"
    for layer in layers.values():
        assert layer.may_import <= set(layers), f"{layer.name} may import an unknown layer"
    modules, _ = _graph()
    assert [m for m in modules if layer_of(m, layers) is None] == []


def test_no_module_imports_a_layer_above_its_own() -> None:
    layers = layers_from_doc(DESIGN.read_text())
    _, edges = _graph()
    assert layer_violations(edges, layers, ROOT) == []


def test_no_modules_import_each_other_in_a_cycle() -> None:
    _, edges = _graph()
    assert cycles(edges) == []


DOC = """
<!-- layers -->
| layer | holds | may import |
|---|---|---|
| `top` | the top | `low`, `top.api` |
| `top.api` | | `low` |
| `low` | | nothing |
<!-- /layers -->
"""


def test_the_checks_find_an_upward_import_a_lazy_one_and_a_cycle(tmp_path: Path) -> None:
    """The checker itself, on a small tree: what the two tests above must catch."""
    files = {
        "low/__init__.py": "",
        "low/a.py": "from low import b\n",  # a loop a -> b -> a
        "low/b.py": "def f():\n    from . import a  # lazy, relative\n    import top.api.x\n",
        "top/__init__.py": "",
        "top/api/__init__.py": "",
        "top/api/x.py": "import low\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import top\n",
        "top/y.py": "from top.api import x\nimport json\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    modules = project_modules(tmp_path, ("low", "top"))
    edges = import_edges(modules)
    assert sorted((e.source, e.target) for e in edges) == [
        ("low.a", "low.b"),
        ("low.b", "low.a"),
        ("low.b", "top.api.x"),
        ("top.api.x", "low"),  # allowed: top.api may import low; the TYPE_CHECKING import is left out
        ("top.y", "top.api.x"),
    ]
    assert cycles(edges) == [["low.a", "low.b"]]
    assert layer_violations(edges, layers_from_doc(DOC), tmp_path) == [
        "low/b.py:3: low.b (layer low) imports top.api.x (layer top.api); low may import nothing"
    ]
