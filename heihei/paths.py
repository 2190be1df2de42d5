"""
Where files are: the data files of `resources/`, installed or not, and the
values a node keeps in its data directory.

A wheel installs the resources as the package `heihei.resources`; in a source
checkout (and under tox, where the tests import the checkout) they are the
top-level `resources/` folder beside `heihei/`.
"""

from __future__ import annotations

import importlib.resources
import os
import secrets
from pathlib import Path


def resource(name: str) -> Path:
    # A checkout's own files first: an editable install maps heihei.resources to the checkout it was
    # installed from, which is not this one when several worktrees share one venv.
    checkout = Path(__file__).resolve().parent.parent / "resources"
    if (checkout / "heihei.example.toml").is_file():
        return checkout / name
    try:
        base = importlib.resources.files("heihei.resources")
    except ModuleNotFoundError:
        base = Path(__file__).resolve().parent.parent / "resources"
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
