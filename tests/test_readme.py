"""The README's examples are what the commands print."""

from pathlib import Path

import pytest

from fusemax.cli import main

def code_blocks(text: str) -> list[str]:
    """The contents of the fenced code blocks of a Markdown text."""
    blocks, current = [], None
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            if current is None:
                current = []
            else:
                blocks.append("".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("argv, first_line", [
    (["cascade", "show", "attention-1pass"], "cascade attention-1pass"),
    (["cascade", "passes", "attention-3pass"], "attention-3pass:"),
])
def test_readme_blocks_match_the_cli(capsys, argv, first_line):
    blocks = code_blocks(README)
    block = next(b for b in blocks if b.startswith(first_line))
    assert main(argv) == 0
    assert capsys.readouterr().out == block


def test_readme_names_the_two_commands():
    assert "make demo" in README and "make test" in README
