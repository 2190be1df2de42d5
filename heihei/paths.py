"""
Where the data files of `resources/` are, installed or not.

A wheel installs them as the package `heihei.resources`; in a source checkout
(and under tox, where the tests import the checkout) they are the top-level
`resources/` folder beside `heihei/`.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path


def resource(name: str) -> Path:
    try:
        base = importlib.resources.files("heihei.resources")
    except ModuleNotFoundError:
        base = Path(__file__).resolve().parent.parent / "resources"
    return Path(str(base.joinpath(name)))
