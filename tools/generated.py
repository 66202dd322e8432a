"""What the document generators share (tools/openapi.py, tools/asyncapi.py): one command that writes the document
it renders, or, with --check, exits 1 naming the difference from the committed file (the drift gate)."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable
from pathlib import Path

from localcloud.cli import Parser


def main(argv: list[str] | None, *, module: str, doc: str | None, output: str, render: Callable[[], str]) -> int:
    """`python -m tools.<module> OUTPUT [--check]`: `doc` is the module's docstring (its first line describes the
    command), `output` the document's path in the repository, `render` its text; `make <module>` writes it."""
    parser = Parser(
        prog=f"python -m tools.{module}",
        description=(doc or "").splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("output", type=Path, help=f"the document to write ({output})")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from the generated one")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current == text:
            print(f"{args.output} is up to date")
            return 0
        diff = difflib.unified_diff(
            current.splitlines(keepends=True),
            text.splitlines(keepends=True),
            fromfile=f"{args.output} (committed)",
            tofile=f"{args.output} (generated)",
            n=2,
        )
        sys.stdout.writelines(list(diff)[:80])
        print(f"\n{args.output} differs from the code: run `make {module}`", file=sys.stderr)
        return 1
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0
