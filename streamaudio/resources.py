"""Where the toolkit's data lives: the YAML tables (manifests/), the JSON Schemas
(schemas/) and the built-in recipes (recipes/).

In a source checkout (and an editable install) they sit beside the package, at
the repository's top level; a wheel carries them inside the package
(pyproject.toml maps them to streamaudio/manifests, streamaudio/schemas and
streamaudio/recipes). Everything that reads them asks here, so both work.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent


def _data_dir(name: str) -> Path:
    inside = PACKAGE_ROOT / name
    if inside.is_dir():  # installed from a wheel
        return inside
    return REPO_ROOT / name  # a checkout or an editable install


MANIFESTS_DIR = _data_dir("manifests")
SCHEMAS_DIR = _data_dir("schemas")
BUILTIN_RECIPES_DIR = _data_dir("recipes")
