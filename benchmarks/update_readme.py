#!/usr/bin/env python
"""Copy the latest measured tables from ``benchmarks/results/*.md`` into the documentation.

The tables live in ``docs/results.md`` (accuracy, full protocol, cross-architecture) and
``docs/speed.md`` (speed), ``docs/scale.md`` (memory and scale); README.md only links to them. A page marks each table with
``<!-- results:NAME -->`` ... ``<!-- /results:NAME -->``; everything between the markers is replaced
by ``benchmarks/results/NAME.md``. Every page in ``PAGES`` is filled, and every table name may appear
on one page only. Run it after a benchmark:

    python benchmarks/update_readme.py            # rewrite the pages
    python benchmarks/update_readme.py --check    # exit 1 if any page is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# the pages that hold generated tables; README.md is listed so a table pasted back there is kept fresh too
PAGES = ("docs/results.md", "docs/speed.md", "docs/scale.md", "README.md")
BLOCK = re.compile(r"(<!-- results:(?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)


def render(text: str, page: str = "README.md") -> str:
    def fill(m: re.Match) -> str:
        src = RESULTS / f"{m['name']}.md"
        if not src.is_file():
            raise SystemExit(f"{page} names results:{m['name']} but {src} does not exist; run its benchmark")
        return m.group(1) + src.read_text().rstrip("\n") + "\n" + m.group(4)

    return BLOCK.sub(fill, text)


def blocks(text: str) -> list[str]:
    """The table names a page holds, in order."""
    return [m["name"] for m in BLOCK.finditer(text)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true")
    p.add_argument("--root", default=str(ROOT), help="repository root whose pages are filled (default: this one)")
    args = p.parse_args(argv)
    root = Path(args.root)
    seen: dict[str, str] = {}
    stale, changed = [], {}
    for page in PAGES:
        path = root / page
        if not path.is_file():
            continue
        old = path.read_text()
        for name in blocks(old):
            if name in seen:
                raise SystemExit(f"results:{name} is on both {seen[name]} and {page}; keep it on one page")
            seen[name] = page
        new = render(old, page)
        if new != old:
            stale.append(page)
            changed[path] = new
    if args.check:
        if stale:
            print(f"{', '.join(stale)} out of date: run python benchmarks/update_readme.py", file=sys.stderr)
            return 1
        return 0
    for path, new in changed.items():
        path.write_text(new)
    print(f"updated {len(changed)} page(s); tables: " + ", ".join(f"{n} ({pg})" for n, pg in seen.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
