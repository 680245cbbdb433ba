"""The architecture, checked on the import graph of every project module (grimp builds it from
the source, function-local imports included):

- no module imports one that imports it back, directly or around a loop;
- no function-local import of a project module (one would only be there to dodge a cycle);
- inside each app, layers one way: faces (consumers, views, forms, admin, api, ...) → services →
  frames → selectors → models;
- across apps, domain modules point one way: reporting → escalation → chat; a domain module never
  imports a face (of any app) or `helpdesk` (the wiring);
- `chat.realtime` is infrastructure: it imports nothing of the chat domain, escalation or
  reporting.
"""

import ast
from functools import cache
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("chat", "escalation", "reporting")
PACKAGES = (*APPS, "helpdesk")

# The last part of a face module's name (or of the package that holds it).
FACES = {
    "admin",
    "api",
    "console_urls",
    "consumers",
    "forms",
    "management",
    "permissions",
    "routing",
    "tasks",
    "templatetags",
    "urls",
    "views",
    "widget",  # the chat widget's views and script (chat/widget.py)
}


@cache
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def is_face(module: str) -> bool:
    return any(part in FACES for part in module.split(".")[1:])


def is_domain(module: str) -> bool:
    return module.split(".")[0] in APPS and not is_face(module) and ".migrations" not in module


def project_imports() -> list[tuple[str, str]]:
    g = graph()
    return sorted(
        (importer, imported)
        for importer in g.modules
        for imported in g.find_modules_directly_imported_by(importer)
    )


def test_the_graph_sees_the_project():
    modules = graph().modules
    assert {"chat.consumers.console", "escalation.services.posting", "reporting.views"} <= modules
    assert len(project_imports()) > 200


def test_no_module_import_cycles():
    g = graph()
    cycles = []
    for importer, imported in project_imports():
        back = g.find_shortest_chain(importer=imported, imported=importer)
        if back:
            cycles.append(" -> ".join((importer, *back)))
    assert cycles == []


def _function_local_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            names: list[str] = []
            if isinstance(inner, ast.Import):
                names = [alias.name for alias in inner.names]
            elif isinstance(inner, ast.ImportFrom) and inner.level == 0 and inner.module:
                names = [inner.module]
            found += [
                f"{path.relative_to(ROOT)}:{inner.lineno} {name}"
                for name in names
                if name.split(".")[0] in PACKAGES
            ]
    return found


def test_no_function_local_imports_of_project_modules():
    local = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                local += _function_local_imports(path)
    assert local == []


@pytest.mark.parametrize("app", APPS)
def test_layers_inside_each_app_point_one_way(app):
    g = graph()
    faces = {m.split(".")[1] for m in g.find_children(app) if is_face(m)}
    layers = [
        grimp.Layer(*sorted(faces), independent=False),
        grimp.Layer("services"),
        grimp.Layer("frames"),
        grimp.Layer("selectors"),
        grimp.Layer("models"),
    ]
    present = [
        layer for layer in layers if any(f"{app}.{m}" in g.modules for m in layer.module_tails)
    ]
    illegal = g.find_illegal_dependencies_for_layers(layers=present, containers={app})
    assert sorted(f"{d.importer} -> {d.imported}" for d in illegal) == []


ORDER = {"chat": 0, "escalation": 1, "reporting": 2}


def test_domain_modules_point_one_way_across_apps():
    wrong = [
        f"{importer} -> {imported}"
        for importer, imported in project_imports()
        if is_domain(importer)
        and is_domain(imported)
        and ORDER[imported.split(".")[0]] > ORDER[importer.split(".")[0]]
    ]
    assert wrong == []


def test_domain_modules_import_no_face_and_no_wiring():
    wrong = [
        f"{importer} -> {imported}"
        for importer, imported in project_imports()
        if is_domain(importer) and (is_face(imported) or imported.startswith("helpdesk"))
    ]
    assert wrong == []


def test_realtime_imports_nothing_of_the_domain():
    wrong = [
        f"{importer} -> {imported}"
        for importer, imported in project_imports()
        if importer.startswith("chat.realtime") and not imported.startswith("chat.realtime")
    ]
    assert wrong == []
