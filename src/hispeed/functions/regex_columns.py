"""Regular expressions over whole columns (REGEXP_EXTRACT) with Arrow's RE2, where RE2, Java and
the row path (Python's `re`, `_string.java_regex`) agree.

The three engines share a core syntax but differ at its edges: `$` also matches before a final
line break in Java and Python, not in RE2; `\\d`, `\\w`, `\\s` and `\\b` are Unicode-aware in
Python; Java has class unions and intersections (`[a[b]]`, `[a&&b]`), possessive quantifiers
and `\\Q...\\E`; RE2 caps repetition counts at 1000; and a capturing group that takes no part
in the match is NULL in Java and Python but empty text in Arrow's extract_regex. So a pattern
takes this path only when `re2_form` can read it whole in a subset where all of them agree:
literals, `.`, `^`, escaped punctuation and `\\t \\n \\r \\f`, classes of literals and ranges,
groups (capturing or `(?:`), alternation, and quantifiers on single characters or classes
(never on groups, where engines disagree about what an empty repetition captures). The group
asked for must take part in every match: none of its enclosing groups or itself may lie in a
branch of an alternation. Everything else runs row by row, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import pyarrow as pa
import pyarrow.compute as pc

_SPECIAL = set("\\.[]{}()*+?^$|")
_ESCAPES = set("tnrf")
#: RE2's largest repetition count
_MAX_REPEAT = 1000


@dataclass(frozen=True)
class Re2Form:
    """A pattern rewritten for Arrow's extract_regex: group k is named `g{k}` (g0 the whole
    match); `always[k]` tells whether group k takes part in every match."""

    pattern: str
    always: tuple[bool, ...]


class _Refused(Exception):  # noqa: N818 - a signal: the pattern leaves the common subset
    pass


@lru_cache(maxsize=256)
def re2_form(pattern: str) -> Re2Form | None:
    """The pattern in the subset the engines agree on, rewritten (see the module), or None."""
    reader = _Reader(pattern)
    try:
        body = reader.alternation()
        if reader.i != len(pattern):
            return None  # an unbalanced ')'
    except _Refused:
        return None
    return Re2Form(f"(?P<g0>{body})", (True, *reader.always))


def extract(values: pa.Array, form: Re2Form, group: int) -> pa.Array:
    """Group `group` of each value's first match (NULL without a match or for NULL)."""
    matched = pc.extract_regex(values, form.pattern)
    field = pc.struct_field(matched, [group])
    # a NULL struct (no match) must make its field NULL whatever the child holds
    return pc.if_else(pc.is_valid(matched), field, pa.scalar(None, pa.string()))


class _Reader:
    """A recursive-descent reader of the common subset, writing the RE2 form as it goes."""

    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0
        self.always: list[bool] = []  # per capturing group, from group 1

    def peek(self) -> str | None:
        return self.p[self.i] if self.i < len(self.p) else None

    def alternation(self) -> str:
        start = len(self.always)
        branches = [self.sequence()]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.sequence())
        if len(branches) > 1:  # a group in one branch takes no part when another matches
            for k in range(start, len(self.always)):
                self.always[k] = False
        return "|".join(branches)

    def sequence(self) -> str:
        out: list[str] = []
        while (c := self.peek()) is not None and c not in "|)":
            if c == "(":
                out.append(self.group())
                if self.peek() in ("*", "+", "?", "{"):
                    raise _Refused  # a quantified group
                continue
            atom = self.atom()
            out.append(atom + self.quantifier(atom))
        return "".join(out)

    def group(self) -> str:
        self.i += 1
        if self.p.startswith("?:", self.i):
            self.i += 2
            inner = self.alternation()
            self.close()
            return f"(?:{inner})"
        if self.peek() == "?":
            raise _Refused  # named groups, flags, lookarounds
        index = len(self.always) + 1
        self.always.append(True)
        inner = self.alternation()
        self.close()
        return f"(?P<g{index}>{inner})"

    def close(self) -> None:
        if self.peek() != ")":
            raise _Refused
        self.i += 1

    def atom(self) -> str:
        c = self.p[self.i]
        if c == "[":
            return self.char_class()
        if c == "\\":
            return self.escape()
        if c in ".^":
            self.i += 1
            return c
        if c in _SPECIAL:
            raise _Refused  # $, a quantifier with nothing before it, a bare ] or }
        self.i += 1
        return c

    def escape(self) -> str:
        nxt = self.p[self.i + 1] if self.i + 1 < len(self.p) else ""
        if nxt in _ESCAPES or (nxt and nxt.isascii() and not nxt.isalnum() and nxt.isprintable()):
            self.i += 2
            return "\\" + nxt
        raise _Refused  # classes like \d (Unicode in Python), anchors, back-references...

    def quantifier(self, atom: str) -> str:
        c = self.peek()
        if c is None or c not in "*+?{":
            return ""
        if atom == "^":
            raise _Refused
        if c == "{":
            end = self.p.find("}", self.i)
            if end < 0:
                raise _Refused
            bounds = self.p[self.i + 1 : end].split(",")
            if len(bounds) > 2 or not bounds[0].isdigit():
                raise _Refused
            if len(bounds) == 2 and bounds[1] and not bounds[1].isdigit():
                raise _Refused
            numbers = [int(b) for b in bounds if b]
            if max(numbers) > _MAX_REPEAT or (len(numbers) == 2 and numbers[0] > numbers[1]):
                raise _Refused
            text = self.p[self.i : end + 1]
            self.i = end + 1
        else:
            text = c
            self.i += 1
        if self.peek() == "?":
            self.i += 1
            text += "?"
        if self.peek() in ("+", "*", "?", "{"):
            raise _Refused  # possessive (Java), or a quantifier of a quantifier
        return text

    def char_class(self) -> str:
        self.i += 1
        out = ["["]
        if self.peek() == "^":
            out.append("^")
            self.i += 1
        items = 0
        while True:
            c = self.peek()
            if c is None or c == "[":
                raise _Refused  # unclosed, or Java's nested classes
            if c == "]":
                if not items:
                    raise _Refused  # `[]...]`: the engines read it differently
                self.i += 1
                out.append("]")
                return "".join(out)
            low = self.class_char()
            if self.peek() == "-" and self.i + 1 < len(self.p) and self.p[self.i + 1] != "]":
                self.i += 1
                high = self.class_char()
                if _char_of(high) < _char_of(low):
                    raise _Refused
                out.append(f"{low}-{high}")
            else:
                out.append(low)
            items += 1

    def class_char(self) -> str:
        c = self.p[self.i]
        if c == "\\":
            return self.escape()
        if c == "&" and self.p.startswith("&&", self.i):
            raise _Refused  # Java's intersection
        if c in "[]":
            raise _Refused
        self.i += 1
        return c


def _char_of(item: str) -> str:
    """The character a class item stands for."""
    if item.startswith("\\"):
        return {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(item[1], item[1])
    return item


__all__ = ["Re2Form", "extract", "re2_form"]
