"""The public surface: every module's ``__all__`` names things that exist, and errors form one hierarchy."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import bench
from bench import errors

MODULES = sorted(m.name for m in pkgutil.walk_packages(bench.__path__, "bench.")
                 # importing Locust monkey-patches the stdlib; bench.cli.__main__ runs the CLI
                 if not m.name.startswith("bench.locust") and not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    for attr in getattr(module, "__all__", ()):
        assert hasattr(module, attr), f"{name}.__all__ lists {attr!r}, which does not exist"


def test_package_exports() -> None:
    assert bench.__version__
    for attr in bench.__all__:
        assert hasattr(bench, attr)


def test_every_error_is_a_kbench_error_with_exit_code() -> None:
    for attr in errors.__all__:
        cls = getattr(errors, attr)
        assert issubclass(cls, errors.KbenchError)
        assert cls.exit_code in (1, 2, 130)
