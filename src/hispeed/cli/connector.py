"""`hispeed connector ...`: make a connector package of your own, list the connectors there are."""

from __future__ import annotations

import re
from pathlib import Path

import click

from hispeed.cli import connector_templates as templates
from hispeed.errors import HispeedError
from hispeed.version import __version__

#: a connector.class name `connector new` accepts: it is also a Python module's name's tail
NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


@click.group()
def connector() -> None:
    """Write connectors of your own (see docs/connectors-api.md)."""


def _class_name(name: str, kind: str) -> str:
    """demo_sink -> DemoSink; foo (a source) -> FooSource."""
    words = "".join(w.capitalize() for w in name.split("_") if w)
    suffix = kind.capitalize()
    return words if words.endswith(suffix) else words + suffix


def scaffold(name: str, kind: str, directory: Path) -> Path:
    """Write the package `hispeed-connector-NAME` into `directory`; its path. The package
    offers one connector, `'connector.class'='NAME'`, through its entry point."""
    if not NAME.fullmatch(name):
        raise HispeedError(
            f"connector name {name!r}: use lower-case letters, digits and _, starting with a "
            "letter (it is the connector.class name and part of the module's name)"
        )
    if kind not in ("sink", "source"):
        raise HispeedError(f"--kind must be sink or source, not {kind!r}")
    package = "hispeed-connector-" + name.replace("_", "-")
    module = "hispeed_connector_" + name
    root = directory / package
    if root.exists():
        raise HispeedError(f"{root} already exists: pick another name or --dir")
    version = ".".join(__version__.split(".")[:2])
    values = {
        "name": name,
        "package": package,
        "module": module,
        "cls": _class_name(name, kind),
        "hispeed": version,
        "kind": kind,
    }
    example = templates.SINK_EXAMPLE if kind == "sink" else templates.SOURCE_EXAMPLE
    values["example"] = example.replace("${name}", name)
    code = templates.SINK if kind == "sink" else templates.SOURCE
    test = templates.SINK_TEST if kind == "sink" else templates.SOURCE_TEST
    files = {
        "pyproject.toml": templates.PYPROJECT,
        "README.md": templates.README,
        f"src/{module}/__init__.py": code,
        f"tests/test_{name}.py": test,
    }
    for path, template in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(template.substitute(values), encoding="utf-8")
    (root / f"src/{module}/py.typed").write_text("", encoding="utf-8")
    return root


@connector.command("new")
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice(["sink", "source"]),
    default="sink",
    show_default=True,
    help="A sink (writes records elsewhere) or a source (brings them in).",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    help="Where to make the package's directory [default: here].",
)
def new(name: str, kind: str, directory: Path) -> None:
    """Make a package offering the connector NAME ('connector.class'='NAME').

    It has the connector's skeleton, a test using hispeed's test helpers (it passes as
    made), a README and a pyproject.toml naming the class in the `hispeed.connectors` entry
    point: `pip install -e` it and the connector works in hispeed."""
    root = scaffold(name, kind, directory)
    click.echo(f"made {root}")
    click.echo(f"  cd {root} && pip install -e '.[test]' && pytest")


@connector.command("list")
def list_() -> None:
    """Every connector.class name there is: built in, registered, or from installed packages."""
    from hispeed.connectors import known_connectors

    for name, where in known_connectors().items():
        click.echo(f"{name:40s} {where}")


__all__ = ["connector", "scaffold"]
