"""Names filled from a record: the MQTT topic or AMQP routing key the bridges publish each
record to ("devices/{KEY}/commands", "cmd.{KEY}.{kind}"), `{KEY}` being the record's key and
`{NAME}` its value's field NAME (matched without regard to case, as ksqlDB upper-cases column
names)."""

from __future__ import annotations

import string
from typing import Any

import msgspec

from hispeed.errors import ConfigError, HispeedError


class TemplateError(HispeedError):
    """A record that cannot fill its template."""


def template_fields(
    template: str, where: str, kind: str, forbidden: str, forbidden_reason: str
) -> tuple[str, ...]:
    """The fields a template (`kind`: "the MQTT topic template", say) names; ConfigError when
    it is malformed or its text holds one of the `forbidden` characters (`forbidden_reason`
    says why)."""
    fields = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise ConfigError(f"{where}: {kind} is malformed: {e}") from None
    for text, name, spec, conversion in parsed:
        if any(c in text for c in forbidden):
            raise ConfigError(f"{where}: {forbidden_reason}")
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ConfigError(f"{where}: {{{name}}} is not a field: write {{KEY}} or {{COLUMN}}")
        fields.append(name)
    return tuple(fields)


class Unreadable:
    """A record value that is not JSON, so no template can take fields from it."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def decode_value(value: bytes) -> Any:
    """A record's value decoded (JSON) for templates that name its fields, or `Unreadable`
    saying why not; `fill` refuses an `Unreadable` with a TemplateError."""
    try:
        return msgspec.json.decode(value)
    except msgspec.DecodeError as e:
        return Unreadable(str(e))
    except RecursionError:  # nested too deeply to read: as unreadable
        return Unreadable("the value nests too deeply")


def fill(
    template: str,
    fields: tuple[str, ...],
    key: bytes | None,
    value: Any,
    forbidden: str,
    what: str,
) -> str:
    """The template filled from a record's key and its decoded value; TemplateError when a
    field is missing, or its text is empty or holds a `forbidden` character (`what` names
    what a field's text must be, for the message)."""
    if isinstance(value, Unreadable):
        raise TemplateError(
            f"{template!r} needs fields of the value, which is not JSON ({value.reason})"
        )
    filled: dict[str, str] = {}
    for name in fields:
        if name == "KEY":
            if key is None:
                raise TemplateError(f"{template!r} needs {{KEY}}: the record has none")
            text = key.decode(errors="replace")
        else:
            text = _field(template, name, value)
        if not text or any(c in text for c in forbidden):
            raise TemplateError(f"{template!r}: {{{name}}} is {text!r}, which cannot be {what}")
        filled[name] = text
    return template.format_map(filled)


def _field(template: str, name: str, value: Any) -> str:
    if not isinstance(value, dict):
        raise TemplateError(
            f"{template!r} needs field {name} of the value, which is not a JSON object"
        )
    found = value.get(name)
    if found is None:
        upper = name.upper()
        found = next((v for k, v in value.items() if str(k).upper() == upper), None)
    if found is None:
        raise TemplateError(f"{template!r} needs field {name}: the value has none")
    if isinstance(found, str):
        return found
    if isinstance(found, dict | list):
        raise TemplateError(f"{template!r}: field {name} is not a single value")
    return msgspec.json.encode(found).decode()


__all__ = ["TemplateError", "Unreadable", "decode_value", "fill", "template_fields"]
