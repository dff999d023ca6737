"""Scalar, aggregate and table functions.

Importing the package (or any of its modules: Python runs this first) registers every
built-in scalar function: the registry comes first, then each family of built-ins, whose
functions register themselves with the registry's `@scalar` decorator. A new family is one
module here plus one line below.
"""

from hispeed.functions import registry  # noqa: F401  (first: the families register with it)

# isort: split
from hispeed.functions import (  # noqa: F401  (each registers its functions on import)
    _collections,
    _datetime,
    _json,
    _math,
    _misc,
    _string,
    memcached,
    redis,
)
