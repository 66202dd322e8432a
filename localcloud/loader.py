"""Importing a function's handler from its CodeUri, the way Lambda does, several functions in one process.

Lambda puts the CodeUri's files at the top of the import path, so every service has its own top-level
`handlers`, `domain`, `store` modules. To hold several services in one interpreter, each CodeUri is imported
with its own top-level modules swapped into sys.modules for the import and swapped out after; the loaded
modules keep their references to each other.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from localcloud.template import ROOT

LAYER_PATH = ROOT / "layers" / "common" / "python"

_loaded: dict[tuple[Path, str], ModuleType] = {}


def ensure_layer_on_path() -> None:
    """The layer is at /opt/python in Lambda; here it is put on sys.path once."""
    if str(LAYER_PATH) not in sys.path:
        sys.path.insert(0, str(LAYER_PATH))


def _top_level_names(code_dir: Path) -> set[str]:
    names = {p.stem for p in code_dir.glob("*.py")}
    names |= {p.name for p in code_dir.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    return names


def load_module(code_dir: Path, module: str, *, fresh: bool = False) -> ModuleType:
    """Import `module` from `code_dir` in isolation from other CodeUris (cached unless `fresh`)."""
    key = (code_dir, module)
    if not fresh and key in _loaded:
        return _loaded[key]
    ensure_layer_on_path()
    names = _top_level_names(code_dir)
    saved = {n: sys.modules.pop(n) for n in list(sys.modules) if n.split(".")[0] in names}
    sys.path.insert(0, str(code_dir))
    try:
        loaded = importlib.import_module(module)
    finally:
        sys.path.remove(str(code_dir))
        for n in [n for n in sys.modules if n.split(".")[0] in names]:
            del sys.modules[n]
        sys.modules.update(saved)
    _loaded[key] = loaded
    return loaded


def load_handler(code_dir: Path, handler: str, *, fresh: bool = False) -> Callable[[dict[str, Any], Any], Any]:
    """The callable named by a template `Handler` ("module.function") under `code_dir`."""
    module, attribute = handler.rsplit(".", 1)
    return getattr(load_module(code_dir, module, fresh=fresh), attribute)  # type: ignore[no-any-return]
