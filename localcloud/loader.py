"""Importing a function's handler from its CodeUri, the way Lambda does, several functions in one process.

Lambda puts the CodeUri's files at the top of the import path (`/var/task`) and the layer's `python/` after it
(`/opt/python`). Every service's code is one package named after the service inside its CodeUri
(`functions/orders/orders/handlers.py`, `Handler: orders.handlers.api_handler`), so every module has one import name
across the project and all CodeUris can sit on one interpreter's path at once: the same modules the tests and mypy
import by name.
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


def _on_path(directory: Path) -> None:
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))


def ensure_layer_on_path() -> None:
    """The layer is at /opt/python in Lambda; here it is put on sys.path once."""
    _on_path(LAYER_PATH)


def load_module(code_dir: Path, module: str) -> ModuleType:
    """Import `module` (a dotted name inside the CodeUri `code_dir`), with the CodeUri and the layer on the path."""
    ensure_layer_on_path()
    _on_path(code_dir)
    return importlib.import_module(module)


def load_handler(code_dir: Path, handler: str) -> Callable[[dict[str, Any], Any], Any]:
    """The callable named by a template `Handler` ("package.module.function") under `code_dir`."""
    module, attribute = handler.rsplit(".", 1)
    return getattr(load_module(code_dir, module), attribute)  # type: ignore[no-any-return]
