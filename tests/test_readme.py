"""The two READMEs give the same commands, and the commands name files that exist."""

import re

from conftest import ROOT


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


def test_the_chinese_readme_gives_the_same_commands():
    english, chinese = commands("README.md"), commands("README_cn.md")
    assert len(english) >= 15
    assert english == chinese, (english - chinese, chinese - english)


def test_each_readme_links_to_the_other():
    assert "(README_cn.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(README.md)" in (ROOT / "README_cn.md").read_text(encoding="utf-8")


def test_the_scripts_and_tools_the_commands_run_exist():
    for command in commands("README.md"):
        for word in command.split():
            if re.fullmatch(r"(tools|deploy|scripts)/\w+\.(py|sh)", word):
                assert (ROOT / word).is_file(), word
