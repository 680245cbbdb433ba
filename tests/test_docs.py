"""The README stays a short map of the code, and the documents cite only what the repository holds.

A new app or sub-package must appear in the README's map, a new environment variable in
docs/configuration.md; a link, and a file a document names, must be in the repository (a module
that moves takes its mentions along), and no text may send the reader to a document or an issue
tracker they do not have.
"""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]


def architecture_map() -> dict[str, str]:
    """{top-level directory: its lines} from the code block of the README's Architecture section."""
    text = README.read_text()
    section = text.split("\n## Architecture\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```\n", 2)[1]
    entries: dict[str, str] = {}
    current = ""
    for line in block.splitlines():
        if line and not line[0].isspace():
            current = line.split("/", 1)[0]
        entries[current] = entries.get(current, "") + line + "\n"
    return entries


def project_packages() -> dict[str, list[str]]:
    """{app: its sub-packages, as paths relative to the app} (migrations left out)."""
    apps = {p.parent.name for p in ROOT.glob("*/apps.py")} | {"helpdesk"}
    found: dict[str, list[str]] = {}
    for app in sorted(apps):
        found[app] = sorted(
            init.parent.relative_to(ROOT / app).as_posix()
            for init in (ROOT / app).rglob("__init__.py")
            if init.parent != ROOT / app and "migrations" not in init.parent.parts
        )
    return found


def test_readme_is_short():
    assert len(README.read_text().splitlines()) <= 170


def test_the_readme_map_names_every_app_and_sub_package():
    entries = architecture_map()
    missing = []
    for app, sub_packages in project_packages().items():
        if app not in entries:
            missing.append(f"{app}/")
            continue
        missing += [f"{app}/{sub}/" for sub in sub_packages if f"{sub}/" not in entries[app]]
    assert missing == []


def environment_variables() -> set[str]:
    """The names helpdesk/settings.py and test_settings.py read through `env` and its helpers."""
    names = set()
    for module in ("settings.py", "test_settings.py"):
        tree = ast.parse((ROOT / "helpdesk" / module).read_text())
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            first = node.args[0]
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                continue
            func = node.func
            if isinstance(func, ast.Attribute) and getattr(func.value, "id", "") == "env":
                if func.attr != "db_url_config":
                    names.add(first.value)
            elif (
                isinstance(func, ast.Name)
                and func.id.startswith("env_")
                and func.id != ("env_secret")
            ):
                names.add(first.value)  # env_positive_int, env_rate, env_networks, ...
            elif isinstance(func, ast.Name) and func.id == "env_secret":
                names |= {first.value, f"{first.value}_FILE"}
    return names


def test_configuration_lists_every_environment_variable():
    names = environment_variables()
    assert {"DJANGO_SECRET_KEY_FILE", "DJANGO_ALLOWED_HOSTS", "TEST_REDIS_DB"} <= names
    documented = (ROOT / "docs" / "configuration.md").read_text()
    assert sorted(name for name in names if f"`{name}`" not in documented) == []


def test_links_lead_to_files_of_the_repository():
    broken = []
    for document in DOCUMENTS:
        for target in re.findall(r"\]\(([^)#\s]+)", document.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (document.parent / target).exists():
                broken.append(f"{document.relative_to(ROOT)}: {target}")
    assert broken == []


# Documents that are not in the repository, and references to an issue tracker.
ELSEWHERE = re.compile(r"DESIGN\.md|STYLE\.md|PLAN\.md|§|\bissues? #?\d+|#\d+\b|this guide", re.I)


def test_no_document_cites_what_the_repository_does_not_hold():
    found = [
        f"{document.relative_to(ROOT)}:{number}: {line.strip()}"
        for document in DOCUMENTS
        for number, line in enumerate(document.read_text().splitlines(), start=1)
        if ELSEWHERE.search(line)
    ]
    assert found == []


CITED_PATH = re.compile(
    r"\b(?:chat|escalation|reporting|helpdesk|bench|tests|static|templates)/[\w/]+\.\w+"
)


def test_every_file_a_document_names_exists():
    missing = sorted(
        f"{document.relative_to(ROOT)}: {path}"
        for document in DOCUMENTS
        for path in set(CITED_PATH.findall(document.read_text()))
        if not (ROOT / path).exists()
    )
    assert missing == []
