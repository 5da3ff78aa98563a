#!/usr/bin/env python3
"""Rewrite the README's generated sections (and docs/img/block_diagram.png) from the code.

    python scripts/gen_docs.py            # rewrite README.md, redraw the block diagram
    python scripts/gen_docs.py --check    # change nothing; exit 1 with a diff if README.md is stale

The sections and what they are generated from: fusemax/docgen.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fusemax.docgen import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
