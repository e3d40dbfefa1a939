#!/usr/bin/env python
"""Copy the latest measured tables from ``benchmarks/results/*.md`` into README.md.

README.md marks each table with ``<!-- results:NAME -->`` ... ``<!-- /results:NAME -->``; everything
between the markers is replaced by ``benchmarks/results/NAME.md``. Run it after a benchmark:

    python benchmarks/update_readme.py            # rewrite README.md
    python benchmarks/update_readme.py --check    # exit 1 if README.md is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BLOCK = re.compile(r"(<!-- results:(?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)


def render(readme: str) -> str:
    def fill(m: re.Match) -> str:
        src = RESULTS / f"{m['name']}.md"
        if not src.is_file():
            raise SystemExit(f"README.md names results:{m['name']} but {src} does not exist; run its benchmark")
        return m.group(1) + src.read_text().rstrip("\n") + "\n" + m.group(4)

    return BLOCK.sub(fill, readme)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true")
    p.add_argument("--readme", default=str(ROOT / "README.md"))
    args = p.parse_args(argv)
    path = Path(args.readme)
    old = path.read_text()
    new = render(old)
    if args.check:
        if new != old:
            print(f"{path} is out of date: run python benchmarks/update_readme.py", file=sys.stderr)
            return 1
        return 0
    path.write_text(new)
    print(f"updated {path}: {', '.join(m['name'] for m in BLOCK.finditer(new))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
