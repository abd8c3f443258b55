"""The docs stay inside the repository and in step with the code.

* Every relative link in a Markdown file of the repo resolves to a file (or folder) in the repo, and a
  ``#fragment`` to a heading of the target; nothing links outside the clone (``../shared/…``, ``/abs``).
* Doc paths named in code and scenario comments (``see docs/capacity.md``) exist.
* ``docs/conformance.md`` lists exactly the checks of ``conformance/test_*.py``, with the marker titles.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: folders never scanned: virtualenvs, run output, caches and build products
SKIP_DIRS = {".git", ".venv", "venv", "reports", "build", "dist", "node_modules", "__pycache__"}
KEEP_HIDDEN = {".github", ".ci"}

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"`[^`]*`")
_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
_REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, …


def _skipped(path: Path) -> bool:
    for part in path.relative_to(REPO).parts[:-1]:
        if part in SKIP_DIRS or part.endswith(".egg-info"):
            return True
        if part.startswith(".") and part not in KEEP_HIDDEN:
            return True
    return False


def _files(pattern: str) -> list[Path]:
    return sorted(p for p in REPO.rglob(pattern) if p.is_file() and not _skipped(p))


def _prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with inline code removed."""
    fenced = False
    for no, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield no, _INLINE_CODE.sub("", line)


def links(text: str) -> list[tuple[int, str]]:
    """(line, target) of every inline link, image and reference definition."""
    out: list[tuple[int, str]] = []
    for no, line in _prose_lines(text):
        out += [(no, m.group(1)) for m in _LINK.finditer(line)]
        if m := _REF_DEF.match(line):
            out.append((no, m.group(1)))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: markup and punctuation dropped, lower case, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a Markdown text's headings (a repeated one also as ``slug-1``, ``slug-2`` …)."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for _no, line in _prose_lines(text):
        if m := _HEADING.match(line):
            s = slug(m.group(2))
            n = seen.get(s, 0)
            out.add(s if n == 0 else f"{s}-{n}")
            seen[s] = n + 1
    return out


def link_problems(md: Path) -> list[str]:
    text = md.read_text(encoding="utf-8")
    rel = md.relative_to(REPO)
    problems: list[str] = []
    for no, target in links(text):
        where = f"{rel}:{no}: {target}"
        if _EXTERNAL.match(target):
            continue
        path_part, _, fragment = target.partition("#")
        if path_part.startswith("/"):
            problems.append(f"{where}: an absolute path (use a path relative to {rel.parent or '.'})")
            continue
        dest = (md.parent / path_part).resolve() if path_part else md
        if not dest.is_relative_to(REPO):
            problems.append(f"{where}: points outside the repository")
            continue
        if not dest.exists():
            problems.append(f"{where}: no such file")
            continue
        if fragment and dest.suffix == ".md" and fragment not in anchors(dest.read_text(encoding="utf-8")):
            problems.append(f"{where}: no heading #{fragment} in {dest.relative_to(REPO)}")
    return problems


MARKDOWN = _files("*.md")


def test_markdown_files_found() -> None:
    names = {p.relative_to(REPO).as_posix() for p in MARKDOWN}
    assert {"README.md", "conformance/README.md", "docs/conformance.md"} <= names


@pytest.mark.parametrize("md", MARKDOWN, ids=lambda p: p.relative_to(REPO).as_posix())
def test_links_resolve_inside_the_repo(md: Path) -> None:
    problems = link_problems(md)
    assert not problems, "broken or outside links:\n" + "\n".join(problems)


def test_link_checker_catches_bad_links(tmp_path: Path) -> None:
    text = ("# Top\n## Repeated runs\n[a](../shared/CONFORMANCE.md) [b](nowhere/none.md) [c](#nope)\n"
            "[d](#repeated-runs) [e](https://example.com/x) `[f](skipped.md)`\n"
            "```\n[g](in-a-fence.md)\n```\n[h]: /abs/path.md\n")
    assert [t for _, t in links(text)] == ["../shared/CONFORMANCE.md", "nowhere/none.md", "#nope",
                                           "#repeated-runs", "https://example.com/x", "/abs/path.md"]
    assert anchors(text) == {"top", "repeated-runs"}
    assert slug("Measured false-alarm and detection rates") == "measured-false-alarm-and-detection-rates"
    assert slug("`kbench plan`: sizing (v2)") == "kbench-plan-sizing-v2"
    assert anchors("# A\n# A\n") == {"a", "a-1"}


#: a repo doc path named in prose: "see docs/capacity.md", "(conformance/README.md)"
_DOC_MENTION = re.compile(r"(?<![\w./-])((?:docs|conformance)/[\w./-]*\.md)\b")


def test_doc_paths_named_in_code_and_scenarios_exist() -> None:
    sources = [*_files("*.py"), *_files("*.yaml"), *_files("*.yml"), *_files("*.toml"), *MARKDOWN]
    missing = [f"{p.relative_to(REPO)}: {m}" for p in sources
               for m in _DOC_MENTION.findall(p.read_text(encoding="utf-8"))
               if not (REPO / m).is_file()]
    assert not missing, "doc paths that do not exist:\n" + "\n".join(missing)


# ------------------------------------------------------------------- docs/conformance.md vs code
def checks_in_code() -> dict[str, str]:
    """ID -> title of every ``@pytest.mark.check(ID, title)`` in ``conformance/test_*.py``."""
    found: dict[str, str] = {}
    for path in sorted((REPO / "conformance").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for dec in node.decorator_list:
                if isinstance(dec, ast.Call) and ast.unparse(dec.func) == "pytest.mark.check":
                    check_id, title = (ast.literal_eval(a) for a in dec.args[:2])
                    assert check_id not in found, f"check {check_id} defined twice ({path.name})"
                    found[check_id] = title
    return found


_ROW = re.compile(r"^\|\s*([A-Z]\d+)\s*\|\s*([^|]*?)\s*\|")


def checks_in_doc() -> dict[str, str]:
    """ID -> semantic of every table row of ``docs/conformance.md``."""
    found: dict[str, str] = {}
    for line in (REPO / "docs" / "conformance.md").read_text(encoding="utf-8").splitlines():
        if m := _ROW.match(line):
            assert m.group(1) not in found, f"check {m.group(1)} listed twice in docs/conformance.md"
            found[m.group(1)] = m.group(2)
    return found


def test_every_check_is_documented_and_every_documented_check_exists() -> None:
    code, doc = checks_in_code(), checks_in_doc()
    assert len(code) >= 50, f"only {len(code)} checks found in conformance/test_*.py"
    assert sorted(set(code) - set(doc)) == [], "checks in conformance/ missing from docs/conformance.md"
    assert sorted(set(doc) - set(code)) == [], "checks in docs/conformance.md with no test in conformance/"


def test_documented_semantics_match_the_markers() -> None:
    code, doc = checks_in_code(), checks_in_doc()
    differ = {i: (doc[i], code[i]) for i in code.keys() & doc.keys() if doc[i] != code[i]}
    assert not differ, f"(docs/conformance.md, marker) titles differ: {differ}"
