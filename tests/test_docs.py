"""The README a newcomer reads in five minutes, and the documentation site in docs/ that holds the rest."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

from conftest import skip_or_fail

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MKDOCS_YML = ROOT / "mkdocs.yml"
PACKAGE_DIR = ROOT / "src" / "playlist_cron"
CI_RUN = ROOT / ".ci" / "run"
README_MOST_BYTES = 15_000
# nox's `docs` session names the mkdocs it installed in a virtual environment of its own (noxfile.py).
MKDOCS_VARIABLE = "PLAYLIST_CRON_TEST_MKDOCS"

DEMO_COMMAND = "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/playlist-cron demo"
MODULE_TABLE_HEADER = "| module | its one job |"


def skip_unless_ci(reason: str) -> NoReturn:
    """Skip the test, saying why; fail it in CI (`CI` set), which must run every test."""
    skip_or_fail(reason, "CI must build the documentation")


def mkdocs_program() -> str:
    """The mkdocs to build the site with: nox's (MKDOCS_VARIABLE), else one beside this Python, else one on PATH."""
    named = os.environ.get(MKDOCS_VARIABLE)
    if named:
        assert Path(named).is_file(), f"{MKDOCS_VARIABLE} names {named}, which is not there"
        return named
    beside = Path(sys.executable).parent / "mkdocs"
    if beside.is_file():
        return str(beside)
    found = shutil.which("mkdocs")
    if found:
        return found
    skip_unless_ci(f"mkdocs is not installed: `nox -s docs`, or pip install -e '.[docs]' (or set {MKDOCS_VARIABLE})")


def mkdocs_config() -> dict[str, Any]:
    try:
        import yaml  # PyYAML comes with kubernetes-validate, in the test extra
    except ImportError:
        skip_unless_ci("PyYAML is not installed (pip install -e '.[test]')")
    config: dict[str, Any] = yaml.safe_load(MKDOCS_YML.read_text())
    return config


def nav_pages(entries: Any) -> list[str]:
    """Given mkdocs.yml's `nav` (or a part of it), return the pages it lists, in order."""
    if isinstance(entries, str):
        return [entries]
    if isinstance(entries, list):
        return [page for entry in entries for page in nav_pages(entry)]
    if isinstance(entries, dict):
        return [page for value in entries.values() for page in nav_pages(value)]
    raise AssertionError(f"not a nav entry: {entries!r}")


def code_blocks(markdown: str) -> list[str]:
    """Given Markdown, return its code blocks in order, fenced (```) and indented (four spaces after a blank line),
    each as its text without the fence or the indent."""
    blocks: list[str] = []
    lines = markdown.splitlines()
    index = 0
    previous_blank = True
    while index < len(lines):
        line = lines[index]
        if line.startswith("```"):
            end = next(n for n in range(index + 1, len(lines)) if lines[n].startswith("```"))
            blocks.append("\n".join(lines[index + 1 : end]))
            index, previous_blank = end + 1, False
            continue
        if previous_blank and line.startswith("    ") and line.strip():
            block = []
            while index < len(lines) and (lines[index].startswith("    ") or not lines[index].strip()):
                block.append(lines[index][4:])
                index += 1
            blocks.append("\n".join(block).strip("\n"))
            previous_blank = True
            continue
        previous_blank = not line.strip()
        index += 1
    return blocks


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    """`mkdocs build --strict`: a broken link or anchor, a page missing from the nav or a nav entry without a page
    fails the build (mkdocs.yml's `validation`), and so this test."""
    mkdocs = mkdocs_program()
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's notice about its successor, on every build
    built = subprocess.run(
        [mkdocs, "build", "--strict", "--config-file", str(MKDOCS_YML), "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert "WARNING" not in built.stderr, built.stderr
    for page in DOCS.glob("*.md"):
        name = "index.html" if page.stem == "index" else f"{page.stem}/index.html"
        assert (site / name).is_file(), f"{page.name} was not built"
    # The report page shows the demo's report as an image, and the image is in the site.
    report = (site / "report" / "index.html").read_text()
    assert re.search(r'<img [^>]*src="\.\./report-demo\.png"', report), "the report page lost its image"
    assert (site / "report-demo.png").read_bytes() == (DOCS / "report-demo.png").read_bytes()


def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page() -> None:
    config = mkdocs_config()
    assert config["docs_dir"] == "docs"
    assert config["theme"]["name"] == "material"
    assert config["strict"] is True
    listed = nav_pages(config["nav"])
    assert len(listed) == len(set(listed)), f"a page listed twice: {listed}"
    pages = sorted(path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md"))
    assert sorted(listed) == pages


def test_the_readme_is_short_and_opens_with_its_two_commands() -> None:
    size = len(README.read_bytes())
    assert size <= README_MOST_BYTES, f"README.md is {size} bytes; the reference belongs in docs/"
    first, second, *_ = code_blocks(README.read_text())
    assert first == DEMO_COMMAND
    assert re.fullmatch(r"python3 -m venv \.venv && \.venv/bin/pip install 'nox>=[\d.]+' && \.venv/bin/nox", second)
    # .ci/run runs the README's test command, as written, with the whole matrix of sessions.
    [ci_line] = [line for line in CI_RUN.read_text().splitlines() if line.startswith("python3 -m venv")]
    assert re.fullmatch(re.escape(second) + r"( -s [\w\- ]+)?", ci_line), (ci_line, second)


def test_code_blocks_are_found_fenced_and_indented() -> None:
    text = "Some text:\n\n```sh\none\n```\n\nMore:\n\n    two\n    three\n\n- a list\n"
    assert code_blocks(text) == ["one", "two\nthree"]


def readme_module_names() -> list[str]:
    """The names in the first column of the README's module table (a cell may name several, each in backticks)."""
    text = README.read_text()
    assert text.count(MODULE_TABLE_HEADER) == 1, f"README.md has no one {MODULE_TABLE_HEADER!r} table"
    rows = text[text.index(MODULE_TABLE_HEADER) :].split("\n\n", 1)[0].splitlines()[2:]
    names = []
    for row in rows:
        first_cell = row.split(" | ", 1)[0].removeprefix("| ")
        cell_names = re.findall(r"`([^`]+)`", first_cell)
        assert cell_names, f"a row of the module table names no module: {row}"
        names += cell_names
    return names


def test_the_readme_module_table_names_every_module_and_nothing_else() -> None:
    named = readme_module_names()
    assert len(named) == len(set(named)), f"a module named twice: {named}"
    modules = {path.name for path in PACKAGE_DIR.glob("*.py")}
    packages = {path.name for path in PACKAGE_DIR.iterdir() if path.is_dir() and (path / "__init__.py").is_file()}
    package_files = {
        f"{package}/{path.relative_to(PACKAGE_DIR / package).as_posix()}"
        for package in packages
        for path in (PACKAGE_DIR / package).rglob("*.py")
    }
    there = modules | {f"{package}/" for package in packages} | package_files
    assert not [name for name in named if name not in there], "the table names what src/playlist_cron does not hold"
    missing = sorted(modules - set(named))
    for package in sorted(packages):
        files = {name for name in package_files if name.startswith(f"{package}/")}
        if f"{package}/" not in named and not files <= set(named):
            missing.append(f"{package}/")
    assert not missing, f"README.md's module table leaves out {missing}"


def heading_anchors(markdown: str) -> set[str]:
    """The anchors MkDocs gives a page's headings (its `toc` slugs: lower case, words joined by hyphens)."""
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", markdown, re.MULTILINE):
        words = re.sub(r"[^\w\s-]", "", heading.replace("`", "")).strip().lower()
        anchors.add(re.sub(r"[-\s]+", "-", words))
    return anchors


def test_every_relative_link_in_the_readme_leads_to_a_file() -> None:
    targets = re.findall(r"\]\(([^)\s]+)\)", README.read_text())
    relative = [target for target in targets if not re.match(r"[a-z][a-z0-9+.-]*:|#", target)]
    assert relative, "the README links to the docs"
    broken = [target for target in relative if not (ROOT / target.split("#", 1)[0]).exists()]
    assert not broken, f"README.md links to files that are not there: {broken}"
    for target in relative:
        path, _, anchor = target.partition("#")
        if anchor:
            assert anchor in heading_anchors((ROOT / path).read_text()), f"{path} has no heading for #{anchor}"


def test_the_development_page_installs_the_packages_ci_installs() -> None:
    """docs/development.md's apt-get line names the Debian packages `.ci/run` installs, no fewer and no more: a
    contributor who follows it runs the tests CI runs."""
    script = (ROOT / ".ci" / "run").read_text()
    listed = re.search(r"^\s*packages=\((.*?)\)", script, flags=re.M | re.S)
    assert listed is not None, ".ci/run has no packages=(...) list"
    page = (ROOT / "docs" / "development.md").read_text()
    line = re.search(r"apt-get install --no-install-recommends ([a-z0-9 .+-]+)`", page)
    assert line is not None, "docs/development.md has no apt-get install line"
    assert sorted(line.group(1).split()) == sorted(listed.group(1).split())
