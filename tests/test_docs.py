"""The documentation's links and the API reference's coverage (no Sphinx needed: `make docs` builds it).

* Every relative link and image in README.md, analysis/README.md and docs/**/*.md points to a file
  that exists, and a link to a heading of a Markdown page (``page.md#heading``) to a heading that
  exists there, with GitHub's anchors (which the Sphinx build uses too, ``myst_heading_anchors``).
  This guards moves such as the research record's into docs/studies/.
* docs/api/index.rst lists every public module (one that declares ``__all__``) of the
  sub-packages the API reference covers, so a new module cannot be left out of it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted([ROOT / "README.md", ROOT / "analysis" / "README.md",
                *(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)])

FENCE = re.compile(r"^(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
SLUG_DROP = re.compile(r"[^\w\u4e00-\u9fff\- ]")


def prose_lines(text: str):
    """(line number, line) of the lines outside fenced code blocks."""
    fenced = False
    for n, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            yield n, line


def slug(title: str) -> str:
    """GitHub's heading anchor (and MyST's ``github_slugify``): the text of the heading (link
    targets, code marks and emphasis left out), lowercased, spaces to hyphens, other punctuation
    dropped."""
    title = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", title)
    title = title.replace("`", "").replace("*", "")
    return SLUG_DROP.sub("", title.lower().replace(" ", "-"))


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path):
    """(line number, target) of every Markdown link and image outside code."""
    for n, line in prose_lines(path.read_text(encoding="utf-8")):
        for m in LINK.finditer(CODE_SPAN.sub("", line)):
            yield n, m.group(1)


def test_pages_found():
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {"README.md", "docs/guide/index.md", "docs/studies/index.md", "docs/studies/training.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page):
    broken = []
    for n, target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        where = f"{page.relative_to(ROOT)}:{n}: {target}"
        if not dest.exists():
            broken.append(f"{where} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{where} (no heading with that anchor in {dest.relative_to(ROOT)})")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_slug_matches_github():
    assert slug("Digits ≥ 97 %: a recipe chosen on a validation split (`digits_hcs_wide`)") == \
        "digits--97--a-recipe-chosen-on-a-validation-split-digits_hcs_wide"
    assert slug("Whole networks as spiking networks ([docs](x.md))") == "whole-networks-as-spiking-networks-docs"


#: The sub-packages and modules the API reference covers (docs/api/index.rst).
API_ROOTS = ("core", "train", "brian", "measure", "plotting", "pipeline", "report", "sweep")


def public_modules() -> list[str]:
    out = []
    for root in API_ROOTS:
        base = ROOT / "hcs_neuro" / root
        files = sorted(base.rglob("*.py")) if base.is_dir() else [base.with_suffix(".py")]
        for f in files:
            tree = ast.parse(f.read_text(encoding="utf-8"))
            if any(isinstance(node, (ast.Assign, ast.AnnAssign)) and
                   any(isinstance(t, ast.Name) and t.id == "__all__"
                       for t in (node.targets if isinstance(node, ast.Assign) else [node.target]))
                   for node in tree.body):
                parts = f.relative_to(ROOT).with_suffix("").parts
                out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def test_api_reference_lists_every_public_module():
    listed = set(re.findall(r"^\s{3}(hcs_neuro[\w.]*)\s*$", (DOCS / "api" / "index.rst").read_text(), re.M))
    modules = public_modules()
    assert "hcs_neuro.pipeline" in modules and "hcs_neuro.core.kwta" in modules
    missing = sorted(set(modules) - listed)
    assert not missing, f"docs/api/index.rst does not list these public modules: {missing}"
    stale = sorted(listed - set(modules))
    assert not stale, f"docs/api/index.rst lists modules that are gone or declare no __all__: {stale}"
