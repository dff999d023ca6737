"""The implementations of Flink's `CREATE FUNCTION name AS 'identifier'`: a Python function by
its import path (LANGUAGE PYTHON), or a Java class by name through `JAVA_CLASSES`, the
Python functions hispeed ships for Java classes it knows (it runs no Java)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from hispeed.functions.udf.catalog import USER_FUNCTIONS, UdfError
from hispeed.functions.udf.decorators import udf

#: a Java (or Scala) class name -> the import path of the Python function that does its work
JAVA_CLASSES: dict[str, str] = {
    # Nexmark's own UDF (q14), beside hispeed's Nexmark generator
    "com.github.nexmark.flink.udf.CountChar": "hispeed.demo.nexmark.count_char",
}

#: the functions CREATE FUNCTION registered in this process: name -> the identifier it named
#: (user functions are the process's, so a replay, or another engine, registers it again)
CREATED: dict[str, str] = {}


def python_function(path: str) -> Callable[..., Any]:
    """The function at `module.attr` (a dotted import path), or a UdfError saying why not."""
    module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise UdfError(
            f"'{path}' is not a Python function's import path: give it as 'module.function'"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        raise UdfError(
            f"Python module '{module_name}' could not be imported: {type(e).__name__}: {e}"
        ) from e
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        what = "has no attribute" if fn is None else "has no function"
        raise UdfError(f"Python module '{module_name}' {what} '{attr}'")
    return fn  # type: ignore[no-any-return]


def java_function(class_name: str) -> Callable[..., Any]:
    """The Python function hispeed runs for the Java class `class_name`, or a UdfError."""
    path = JAVA_CLASSES.get(class_name)
    if path is None:
        raise UdfError(
            f"Java class '{class_name}' cannot run in hispeed (it runs no Java). Write the "
            "function in Python, with type annotations, and name it: CREATE FUNCTION name AS "
            "'my_module.my_function' LANGUAGE PYTHON (README.md, \"Python UDFs\"). hispeed "
            "ships Python for these Java classes: " + ", ".join(sorted(JAVA_CLASSES))
        )
    return python_function(path)


def register(name: str, identifier: str, language: str) -> bool:
    """Register the function `identifier` names (in `language`) as the scalar function
    `name`, typed by its annotations. False when `name` was registered from another
    identifier already (nothing changed); a UdfError when it cannot be registered."""
    known = CREATED.get(name)
    if known is not None and known != identifier and name in USER_FUNCTIONS:
        return False
    if known is None and name in USER_FUNCTIONS:
        return False  # a @hispeed.udf function of that name
    fn = python_function(identifier) if language == "PYTHON" else java_function(identifier)
    udf(name=name)(fn)
    CREATED[name] = identifier
    return True


__all__ = ["CREATED", "JAVA_CLASSES", "java_function", "python_function", "register"]
