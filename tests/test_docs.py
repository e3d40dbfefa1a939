"""The README is a door: short, the two commands first (the test command is the one CI runs), and every
link of the README and of docs/ reaches a file and a heading that exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _prose(text: str) -> str:
    """``text`` without its fenced code blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _slug(heading: str) -> str:  # GitHub's heading anchors
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(m[1]) for m in re.finditer(r"^#+ (.*)$", _prose(path.read_text()), re.M)}


def test_readme_is_short_and_starts_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    first_block = re.search(r"^```bash\n(.*?)^```", readme, re.S | re.M)
    assert first_block and readme[:first_block.start()].count("\n") < 20, "the two commands come first"
    commands = [line.split("#")[0].strip() for line in first_block[1].splitlines()]
    assert commands == ["bash scripts/main.sh", "bash scripts/test.sh"]
    assert all((ROOT / c.split()[1]).is_file() for c in commands)
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in ci.splitlines()[-1], "CI runs the README's test command"


def test_readme_results_summary_quotes_only_figures_the_docs_hold():
    readme = (ROOT / "README.md").read_text()
    summary = readme[readme.index("## Results"):readme.index("## Documentation")]
    docs = "".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    figures = re.findall(r"\d+\.\d+", summary)
    assert len(figures) > 10
    assert [f for f in figures if f not in docs] == []


def test_every_link_of_the_readme_and_docs_resolves():
    broken = []
    for page in PAGES:
        for target in LINK.findall(_prose(page.read_text())):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []
