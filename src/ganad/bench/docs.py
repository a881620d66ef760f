"""Results tables in Markdown pages that cannot drift from their stores.

A page (the README, ``docs/results.md``) embeds a table as a block::

    <!-- ganad results docs/results/egbad-kdd99-cpu --only row_scaling=none --metric f1 -->
    ...the table, exactly as that command prints it...
    <!-- end -->

:func:`check` re-runs each block's ``ganad results`` arguments against the committed store and
names every block whose text differs; the test suite runs it on every page, so a number in the
docs is the store's number. ``python -m ganad.bench.docs PAGE... --write`` rewrites the blocks
after a grid adds results. Store paths are relative to the repository root (``root``).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from pathlib import Path

from ganad.errors import ConfigError

BLOCK = re.compile(r"<!-- ganad results (?P<args>[^\n]*?) -->\n(?P<body>.*?)<!-- end -->", re.S)


def render(args: str, root: str | Path = ".") -> str:
    """The text ``ganad results ARGS`` prints, with ARGS' store path taken relative to ``root``."""
    from ganad.cli import make_parser, results_text

    words = shlex.split(args)
    parsed = make_parser().parse_args(["results", *words])
    if parsed.output is not None or parsed.format != "markdown":
        raise ConfigError(f"a docs block prints Markdown to the page: drop --output/--format from {args!r}")
    parsed.folder = Path(root) / parsed.folder
    return results_text(parsed)


def blocks(text: str) -> list[re.Match[str]]:
    """The ``ganad results`` blocks of a page, in order."""
    return list(BLOCK.finditer(text))


def check(page: str | Path, root: str | Path = ".") -> list[str]:
    """One line per block of ``page`` whose table differs from what its store gives now ([] = all agree)."""
    text = Path(page).read_text()
    stale = []
    for m in blocks(text):
        if m["body"] != render(m["args"], root):
            line = text.count("\n", 0, m.start()) + 1
            stale.append(f"{page}:{line}: the table of 'ganad results {m['args']}' differs from its store")
    return stale


def write(page: str | Path, root: str | Path = ".") -> int:
    """Rewrite every block of ``page`` from its store; returns how many changed."""
    path = Path(page)
    text = path.read_text()
    changed = 0

    def fill(m: re.Match[str]) -> str:
        nonlocal changed
        body = render(m["args"], root)
        changed += body != m["body"]
        return f"<!-- ganad results {m['args']} -->\n{body}<!-- end -->"

    new = BLOCK.sub(fill, text)
    if changed:
        from ganad.atomic import atomic_write_bytes

        atomic_write_bytes(path, new.encode())
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m ganad.bench.docs",
        description="Check (default) or rewrite (--write) the 'ganad results' tables embedded in Markdown pages.",
    )
    ap.add_argument("pages", nargs="+", type=Path)
    ap.add_argument("--root", type=Path, default=Path(os.getcwd()), help="repository root (store paths start here)")
    ap.add_argument("--write", action="store_true", help="rewrite stale tables from their stores")
    a = ap.parse_args(argv)
    try:
        if a.write:
            for page in a.pages:
                print(f"{page}: {write(page, a.root)} table(s) rewritten")
            return 0
        stale = [line for page in a.pages for line in check(page, a.root)]
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n".join(stale) if stale else "every table agrees with its store", file=sys.stderr if stale else sys.stdout)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
