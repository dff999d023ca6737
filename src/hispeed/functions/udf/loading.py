"""Loading the modules (dotted names or .py files) whose decorated functions register: the
`udf_modules` setting and `Engine(udf_modules=...)` call `load_modules`."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path

from hispeed.errors import HispeedError


def load_modules(names: Iterable[str]) -> list[str]:
    """Import each module (a dotted name, or a path to a .py file) so its functions register.

    Returns the module names imported. A module that cannot be imported raises a HispeedError
    naming it, with the reason.
    """
    loaded = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        try:
            if name.endswith(".py") or "/" in name or "\\" in name:
                loaded.append(_load_file(Path(name)))
            else:
                importlib.import_module(name)
                loaded.append(name)
        except HispeedError as e:
            raise HispeedError(f"UDF module {name!r}: {e}") from e
        except Exception as e:
            raise HispeedError(
                f"UDF module {name!r} could not be imported: {type(e).__name__}: {e}"
            ) from e
    return loaded


def _load_file(path: Path) -> str:
    if not path.is_file():
        raise HispeedError("no such file")
    module_name = f"hispeed_udf_{path.stem}"
    if module_name in sys.modules:
        return module_name
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise HispeedError("not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module_name
