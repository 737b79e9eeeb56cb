"""The two READMEs give the same commands, the commands name tools and flags that exist, and every
relative link in the READMEs and docs/ leads to a file (and a heading) of the repository."""

import functools
import re
import subprocess
import sys

import pytest
from conftest import ROOT

DOCUMENTS = ["README.md", "README_cn.md"] + sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")
)
TOOL = re.compile(r"python (?:-m paddle\.distributed\.launch [^`|]*?)?((?:tools|deploy)/\w+\.py)")


def commands(readme: str) -> set[str]:
    """The commands in the ```bash blocks, without comments."""
    text = (ROOT / readme).read_text(encoding="utf-8")
    found = set()
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            command = line.split("  #")[0].strip()
            if command and not command.startswith("#"):
                found.add(command)
    return found


def table_commands(readme: str) -> list[str]:
    """The commands in the tables' first column: `python tools/x.py ...` in backticks."""
    text = (ROOT / readme).read_text(encoding="utf-8")
    cells = [line.split(" | ")[0] for line in text.splitlines() if line.startswith("| `python")]
    return [c for cell in cells for c in re.findall(r"`(python [^`]+)`", cell)]


def test_the_chinese_readme_gives_the_same_commands():
    english, chinese = commands("README.md"), commands("README_cn.md")
    assert len(english) >= 15
    assert english == chinese, (english - chinese, chinese - english)
    assert table_commands("README.md") == table_commands("README_cn.md")


def test_each_readme_links_to_the_other():
    assert "(README_cn.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(README.md)" in (ROOT / "README_cn.md").read_text(encoding="utf-8")


def test_the_scripts_and_tools_the_commands_run_exist():
    for command in commands("README.md") | set(table_commands("README.md")):
        for word in command.split():
            if re.fullmatch(r"(tools|deploy|scripts)/\w+\.(py|sh)", word):
                assert (ROOT / word).is_file(), word


@functools.cache
def help_text(tool: str) -> str:
    result = subprocess.run(
        [sys.executable, tool, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("readme", ["README.md", "README_cn.md"])
def test_every_flag_the_readme_shows_is_in_the_tools_help(readme):
    """Each `python tools/x.py ... --flag` of the tools table and the bash blocks: the flag is in
    `python tools/x.py --help` (a renamed or removed flag fails here, not for a user)."""
    checked = 0
    for command in table_commands(readme) + sorted(commands(readme)):
        # a table cell may hold two commands: `python a.py [--x]`, `python b.py [--y]`
        for tool, rest in re.findall(r"python (?:-m paddle\.distributed\.launch \S+ \S+ )?"
                                     r"((?:tools|deploy)/\w+\.py)([^,]*)", command):  # fmt: skip
            for flag in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", rest):
                assert re.search(rf"(?<![\w-]){re.escape(flag)}\b", help_text(tool)), (
                    f"{readme}: {tool} {flag} is not in its --help"
                )
                checked += 1
    assert checked >= 30


def slug(heading: str) -> str:
    """The anchor GitHub makes of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # a '# comment' in a block is no heading
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_relative_link_leads_to_a_file_and_heading(document):
    path = ROOT / document
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links, f"{document} links to nothing"
    for link in links:
        if re.match(r"[a-z]+:", link):  # http://, https://, mailto:
            continue
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        assert file.is_file(), f"{document}: {link} leads to no file"
        assert ROOT in file.parents, f"{document}: {link} leads out of the repository"
        if anchor and file.suffix == ".md":
            assert anchor in anchors(file), f"{document}: {link}: no such heading in {file.name}"
