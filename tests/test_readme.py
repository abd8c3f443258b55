"""The README's first two commands are the contract with a new user: keep them true and in CI."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _quick_start() -> list[str]:
    lines = (REPO / "README.md").read_text().splitlines()
    start = lines.index("```bash")
    return lines[start + 1:start + 3]


def test_two_commands_first() -> None:
    main, tests = _quick_start()
    assert "kbench run scenarios/" in main and "--broker kafka" in main
    assert tests.rstrip().endswith("pytest")
    scenario = main.split("kbench run ", 1)[1].split()[0]
    assert (REPO / scenario).is_file(), f"README runs {scenario}, which does not exist"


def test_ci_runs_the_readme_test_command() -> None:
    _main, tests = _quick_start()
    ci = (REPO / ".ci" / "run").read_text()
    test_cmd = tests.split("&&")[-1].strip()
    install = tests.split("&&")[-2].strip()
    assert any(line.strip() == test_cmd for line in ci.splitlines()), f"{test_cmd!r} not run by .ci/run"
    assert install.replace("pip install", "python -m pip install -q") in ci
    assert "-eq 5" in ci, "CI must fail when pytest ran no test"
