"""`make run` installs requirements.txt alone: what runs Tierline, pinned, and no development tool.

Tests, linters, stubs and benchmark tools live in requirements-dev.txt, which includes the runtime
file; the development targets of the Makefile install it, `make run` never does.
"""

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
APP_PACKAGES = ("chat", "escalation", "reporting", "helpdesk")

# Distributions that only tests, linters, type checking or benchmarks use.
DEV_TOOLS = {
    "aiosmtpd",
    "pytest",
    "pytest-django",
    "pytest-asyncio",
    "mypy",
    "ruff",
    "playwright",
    "schemathesis",
    "hypothesis",
    "py-spy",
    "django-stubs",
    "djangorestframework-stubs",
    "factory-boy",
    "faker",
    "websockets",
    "granian",
    "uvloop",
    "httptools",
}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(file_name: str) -> dict[str, str]:
    """{normalized name: version} of a requirements file's own lines (not its -r includes)."""
    found = {}
    for raw in (ROOT / file_name).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-r "):
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"{file_name}: {raw!r} is not pinned with =="
        found[normalize(name)] = version
    return found


def test_runtime_requirements_hold_no_development_tool():
    runtime = pins("requirements.txt")
    assert sorted(DEV_TOOLS & runtime.keys()) == []
    assert [name for name in runtime if name.startswith(("types-", "pytest"))] == []


def test_development_requirements_add_the_tools_to_the_runtime_ones():
    lines = (ROOT / "requirements-dev.txt").read_text().splitlines()
    assert "-r requirements.txt" in lines
    dev = pins("requirements-dev.txt")
    assert sorted(DEV_TOOLS - dev.keys()) == []
    assert sorted(dev.keys() & pins("requirements.txt").keys()) == []  # each pinned once


def third_party_imports() -> set[str]:
    """Top-level modules the application packages import, or its settings name (apps,
    middleware, backends), that are neither stdlib nor ours."""
    ours = {*APP_PACKAGES, "tests", "bench"}
    named = [*settings.INSTALLED_APPS, *settings.MIDDLEWARE, *settings.AUTHENTICATION_BACKENDS]
    # The services mode's database driver and stock channel layer, whatever this run uses.
    names = {"psycopg", "channels_redis", *(name.split(".")[0] for name in named)}
    for package in APP_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ours}


def test_every_package_the_application_imports_is_a_runtime_requirement():
    runtime = pins("requirements.txt")
    providers = packages_distributions()
    missing = {
        module: providers.get(module)
        for module in third_party_imports()
        if not any(normalize(d) in runtime for d in providers.get(module, []))
    }
    assert missing == {}


def make_rules() -> dict[str, list[str]]:
    """{target: prerequisites} of the Makefile's rule lines."""
    rules = {}
    for line in (ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([\w$().\-/ ]+):(?!=)\s*(.*)$", line)
        if match and not line.startswith((".PHONY", "\t")):
            for target in match.group(1).split():
                rules[target] = match.group(2).split()
    return rules


def reaches(rules: dict[str, list[str]], target: str) -> set[str]:
    seen: set[str] = set()
    todo = [target]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(rules.get(current, []))
    return seen


def test_make_run_installs_the_runtime_part_and_the_development_targets_both():
    rules = make_rules()
    assert "$(VENV)/.installed" in reaches(rules, "run")
    assert "install-dev" not in reaches(rules, "run")
    assert "$(VENV)/.installed-dev" not in reaches(rules, "run")
    for target in ("test", "lint", "typecheck", "check", "bench-realtime", "bench-escalation"):
        assert "$(VENV)/.installed-dev" in reaches(rules, target), target
    # A development install after a runtime one still installs the development part.
    assert "$(VENV)/.installed" in rules["$(VENV)/.installed-dev"]
    assert "requirements-dev.txt" in rules["$(VENV)/.installed-dev"]
