"""The built-in cascades (``fusemax/sw/library/*.cas``) and loading a cascade by name or file."""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

from fusemax.errors import FuseMaxError
from fusemax.sw.cascade.check import CheckedCascade, check_cascade
from fusemax.sw.cascade.syntax import parse_cascade

#: The order ``fusemax cascade list`` shows them in: the paper's order, then the attention
#: variants ("Beyond softmax", docs/variants.md) in the order of that page.
BUILTIN_ORDER = ["pedagogical-1", "pedagogical-2", "pedagogical-3",
                 "attention-3pass", "attention-2pass", "attention-1pass",
                 "attention-softmax1", "attention-kbias", "attention-kvbias",
                 "sigmoid-nonorm", "sigmoid-norm", "attention-entropy", "act-calibration",
                 "flowformer", "flowformer-causal", "attention-local", "attention-routing"]


def _library_dir():
    return resources.files("fusemax.sw") / "library"


def builtin_names() -> list[str]:
    names = sorted(p.name[:-4] for p in _library_dir().iterdir() if p.name.endswith(".cas"))
    return [n for n in BUILTIN_ORDER if n in names] + [n for n in names if n not in BUILTIN_ORDER]


def cascade_text(name_or_path: str) -> tuple[str, str]:
    """The text of a built-in cascade or of a file, and the source name errors should cite."""
    if name_or_path in builtin_names():
        path = _library_dir() / f"{name_or_path}.cas"
        return path.read_text(encoding="utf-8"), f"{name_or_path}.cas"
    path = Path(name_or_path)
    if path.is_file():
        return path.read_text(encoding="utf-8"), str(path)
    close = difflib.get_close_matches(name_or_path, builtin_names(), n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    raise FuseMaxError(f"no built-in cascade or file named {name_or_path!r}{hint} "
                       f"(built-ins: {', '.join(builtin_names())})")


def load_cascade(name_or_path: str) -> CheckedCascade:
    """Parse and check a built-in cascade or a cascade file."""
    text, source = cascade_text(name_or_path)
    return check_cascade(parse_cascade(text, source), text)
