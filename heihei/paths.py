"""
Where files are: the data files of `resources/`, installed or not, and the
values a node keeps in its data directory.

A wheel installs the resources as the package `heihei.resources`; in a source
checkout (and under tox, where the tests import the checkout) they are the
top-level `resources/` folder beside `heihei/`. The checkout's folder wins when
it is there: an editable install in a shared environment may map
`heihei.resources` to another checkout than the `heihei` being imported.
"""

from __future__ import annotations

import importlib.resources
import os
import secrets
from pathlib import Path


#: the `resources/` folder of a source checkout (absent in an installed wheel)
CHECKOUT_RESOURCES = Path(__file__).resolve().parent.parent / "resources"


def resource(name: str) -> Path:
    if (CHECKOUT_RESOURCES / "heihei.example.toml").is_file():
        return CHECKOUT_RESOURCES / name
    try:
        base = importlib.resources.files("heihei.resources")
    except ModuleNotFoundError:
        base = CHECKOUT_RESOURCES
    return Path(str(base.joinpath(name)))


def load_or_create_secret(data_dir: str, name: str, nbytes: int = 16) -> str:
    """A value generated once and kept in the data dir (node id, admin token ...), mode 0600."""
    path = os.path.join(data_dir, name)
    try:
        with open(path) as f:
            value = f.read().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    os.makedirs(data_dir, exist_ok=True)
    value = secrets.token_hex(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value
