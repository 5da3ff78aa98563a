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


def test_generated_sections_are_up_to_date():
    """The sections between <!-- BEGIN generated:... --> markers are what the code generates
    (python scripts/gen_docs.py rewrites them)."""
    from fusemax.docgen import check

    diffs = check()
    assert not diffs, "run python scripts/gen_docs.py:\n" + "\n".join(diffs)


def test_readme_has_every_generated_section_and_the_diagram():
    from fusemax.docgen import DIAGRAM, ROOT, SECTIONS

    for name in SECTIONS:
        assert f"<!-- BEGIN generated:{name} -->" in README, name
    assert f"]({DIAGRAM.as_posix()})" in README
    assert (ROOT / DIAGRAM).is_file()


def test_generated_schedule_table_matches_the_encoder():
    """Every field's bit range in the README is where schedule.encode puts it."""
    from fusemax.docgen import section_schedule
    from fusemax.sw import schedule as sf

    text = section_schedule()
    for op in sf.OPCODES.values():
        for name, (lo, width) in op.fields.items():
            hi = lo + width - 1
            assert sf.encode(op.name, **{name: 1}) == (op.code << sf.OPCODE_LO) | (1 << lo)
            rng = f"[{lo}]" if width == 1 else f"[{hi}:{lo}]"
            assert f"{rng} **{name}**" in text, (op.name, name)
