"""The registry finds every built-in function, whichever module of the package was imported."""

import subprocess
import sys


def test_importing_the_registry_alone_registers_the_built_ins() -> None:
    # a fresh interpreter: this one has long imported every family
    code = "from hispeed.functions.registry import lookup; assert lookup('ucase') is not None"
    subprocess.run([sys.executable, "-c", code], check=True)
