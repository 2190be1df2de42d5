"""The wheel must carry every package of the source tree (tests import the checkout)."""

import os
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_heihei_package_is_in_the_wheel():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        declared = set(tomllib.load(f)["tool"]["setuptools"]["packages"])
    found = set()
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, "heihei")):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        if any(name.endswith(".py") for name in filenames):
            found.add(os.path.relpath(dirpath, ROOT).replace(os.sep, "."))
    assert found <= declared, f"missing from pyproject packages: {sorted(found - declared)}"
    assert "twisted.plugins" in declared and "heihei.resources" in declared


def test_the_wheel_carries_the_demo_pages_and_the_console():
    # the tests read the checkout's resources/, so a file the wheel leaves out would pass here and
    # be missing from an installed server: every file of the page folders must match a pattern
    import fnmatch

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        patterns = tomllib.load(f)["tool"]["setuptools"]["package-data"]["heihei.resources"]
    for folder in ("demo", "console"):
        names = os.listdir(os.path.join(ROOT, "resources", folder))
        assert names
        for name in names:
            assert any(fnmatch.fnmatch(f"{folder}/{name}", p) for p in patterns), f"{folder}/{name} not in the wheel"
