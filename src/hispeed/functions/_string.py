"""String functions: case, trimming, padding, substrings, splitting, regular expressions, masks."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from functools import lru_cache, reduce
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hispeed.functions.regex_columns import extract, re2_form
from hispeed.functions.registry import EvalContext, scalar
from hispeed.functions.signatures import (
    check,
    constant,
    mask_nulls,
    reject,
    rows,
)
from hispeed.sql.types import BYTES, INTEGER, STRING, SqlType, array, map_

Args = Sequence[pa.Array]
Types = Sequence[SqlType]


def _string_to_string(name: str) -> Callable[[Types], SqlType]:
    def resolve(arg_types: Types) -> SqlType:
        check(name, "(STRING)", arg_types, STRING)
        return STRING

    return resolve


@scalar("UCASE", _string_to_string("UCASE"))
def _ucase(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Convert a string to upper case."""
    return pc.utf8_upper(args[0])


@scalar("LCASE", _string_to_string("LCASE"))
def _lcase(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Convert a string to lower case."""
    return pc.utf8_lower(args[0])


# Java's String.trim() removes every character up to and including the space.
_TRIMMED = "".join(chr(c) for c in range(0x21))


@scalar("TRIM", _string_to_string("TRIM"))
def _trim(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Remove spaces and control characters from both ends of a string."""
    return pc.utf8_trim(args[0], characters=_TRIMMED)


@scalar("LTRIM", _string_to_string("LTRIM"))
def _ltrim(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Remove spaces and control characters from the start of a string."""
    return pc.utf8_ltrim(args[0], characters=_TRIMMED)


@scalar("RTRIM", _string_to_string("RTRIM"))
def _rtrim(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Remove spaces and control characters from the end of a string."""
    return pc.utf8_rtrim(args[0], characters=_TRIMMED)


_JAVA_SPACE = " \t\n\x0b\f\r"
_WORD = re.compile(f"[^{_JAVA_SPACE}]+[{_JAVA_SPACE}]*")


def _initcap_one(s: str) -> str:
    return "".join(m[0][:1].upper() + m[0][1:] for m in _WORD.finditer(s.lower()))


@scalar("INITCAP", _string_to_string("INITCAP"))
def _initcap(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Capitalize the first letter of each whitespace-separated word, lower-case the rest."""
    return rows(ctx, "INITCAP", args, rt, _initcap_one)


def _resolve_len(arg_types: Types) -> SqlType:
    if len(arg_types) != 1 or arg_types[0].name not in ("STRING", "BYTES"):
        reject("LEN", "(STRING) or (BYTES)", arg_types)
    return INTEGER


_ASTRAL = r"[\x{10000}-\x{10FFFF}]"


@scalar("LEN", _resolve_len)
def _len(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the length of a string (in UTF-16 units, as Java counts) or of bytes."""
    arr = args[0]
    if arg_types[0].name == "BYTES":
        return pc.cast(pc.binary_length(arr), pa.int32())
    chars = pc.utf8_length(arr)
    if pc.sum(pc.binary_length(arr)).as_py() != pc.sum(chars).as_py():
        # characters outside the BMP take two UTF-16 units
        chars = pc.add(chars, pc.cast(pc.count_substring_regex(arr, _ASTRAL), chars.type))
    return pc.cast(chars, pa.int32())


# --- CONCAT, CONCAT_WS ---------------------------------------------------------------------------


def _resolve_concat(arg_types: Types) -> SqlType:
    if arg_types and all(t == STRING for t in arg_types):
        return STRING
    if arg_types and all(t == BYTES for t in arg_types):
        return BYTES
    reject("CONCAT", "one or more STRING or one or more BYTES", arg_types)


@scalar("CONCAT", _resolve_concat, handles_nulls=True)
def _concat(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Concatenate strings (or bytes), treating NULL as empty."""
    empty = pa.scalar("" if rt == STRING else b"", rt.to_arrow())
    filled = [pc.fill_null(a, empty) for a in args]
    return pc.binary_join_element_wise(*filled, empty)


def _resolve_concat_ws(arg_types: Types) -> SqlType:
    if len(arg_types) >= 2 and all(t == STRING for t in arg_types):
        return STRING
    if len(arg_types) >= 2 and all(t == BYTES for t in arg_types):
        return BYTES
    reject("CONCAT_WS", "(separator, value, ...) all STRING or all BYTES", arg_types)


@scalar("CONCAT_WS", _resolve_concat_ws, handles_nulls=True)
def _concat_ws(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Join the non-NULL values with the separator given first; NULL separator gives NULL."""
    values = list(args[1:])
    # Arrow (26) drops a row whose values are all NULL under null_handling="skip", leaving the
    # result shorter than the batch; such a row joins to an empty text, so make it one
    all_null = reduce(pc.and_, [pc.is_null(v) for v in values])
    empty = pa.scalar("" if rt == STRING else b"", rt.to_arrow())
    values[0] = pc.if_else(all_null, empty, values[0])
    return pc.binary_join_element_wise(*values, args[0], null_handling="skip")


# --- SUBSTRING, INSTR, padding -------------------------------------------------------------------


def _resolve_substring(arg_types: Types) -> SqlType:
    accepts = "(STRING, INTEGER[, INTEGER]) or (BYTES, INTEGER[, INTEGER])"
    if len(arg_types) not in (2, 3) or arg_types[0].name not in ("STRING", "BYTES"):
        reject("SUBSTRING", accepts, arg_types)
    if any(t != INTEGER for t in arg_types[1:]):
        reject("SUBSTRING", accepts, arg_types)
    return arg_types[0]


def _substring_one(value: Any, pos: int, length: int | None = None) -> Any:
    n = len(value)
    start = max(n + pos, 0) if pos < 0 else max(min(pos - 1, n), 0)
    if length is None:
        return value[start:]
    end = max(min(start + length, n), start)
    return value[start:end]


@scalar("SUBSTRING", _resolve_substring)
def _substring(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the part from 1-based position pos (negative counts from the end), of length len."""
    same_pos, pos = constant(args[1])
    same_len, length = constant(args[2]) if len(args) == 3 else (True, None)
    if same_pos and same_len and pos is not None and pos >= 0:
        start = max(pos - 1, 0)
        if len(args) == 3 and length is not None:
            stop = start + max(length, 0)
        else:
            stop = 2**62
        if rt == STRING:
            out = pc.utf8_slice_codeunits(args[0], start=start, stop=stop)
        else:
            out = pc.binary_slice(args[0], start=start, stop=stop)
        return mask_nulls(out, *args)
    return rows(ctx, "SUBSTRING", args, rt, _substring_one)


def _resolve_instr(arg_types: Types) -> SqlType:
    accepts = "(STRING, STRING[, INTEGER[, INTEGER]])"
    if len(arg_types) not in (2, 3, 4):
        reject("INSTR", accepts, arg_types)
    check("INSTR", accepts, arg_types, STRING, STRING, *([INTEGER] * (len(arg_types) - 2)))
    return INTEGER


def _ordinal_index(s: str, sub: str, ordinal: int) -> int:
    if ordinal <= 0:
        return -1
    if not sub:
        return 0
    found, index = 0, -1
    while True:
        index = s.find(sub, index + 1)
        if index < 0:
            return -1
        found += 1
        if found >= ordinal:
            return index


def _instr_one(s: Any, sub: Any, pos: Any = 1, occurrence: Any = 1) -> int | None:
    if s is None or sub is None:
        return 0
    if pos is None or occurrence is None:
        return None
    if abs(pos) > len(s):
        return 0
    if pos < 0:
        rev_s, rev_sub, p = s[::-1], sub[::-1], -pos
        i = _ordinal_index(rev_s[p - 1 :], rev_sub, occurrence)
        return 0 if i < 0 else len(rev_s) - p - i - len(sub) + 2
    i = _ordinal_index(s[pos - 1 :] if pos > 0 else s[-1:], sub, occurrence)
    return 0 if i < 0 else i + pos


@scalar("INSTR", _resolve_instr, handles_nulls=True)
def _instr(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the 1-based position of the n-th occurrence of substring from a position, or 0."""
    return rows(ctx, "INSTR", args, rt, _instr_one, skip_nulls=False)


def _resolve_pad(name: str) -> Callable[[Types], SqlType]:
    accepts = "(STRING, INTEGER, STRING) or (BYTES, INTEGER, BYTES)"

    def resolve(arg_types: Types) -> SqlType:
        if len(arg_types) != 3 or arg_types[0].name not in ("STRING", "BYTES"):
            reject(name, accepts, arg_types)
        check(name, accepts, arg_types, arg_types[0], INTEGER, arg_types[0])
        return arg_types[0]

    return resolve


def _pad(left: bool) -> Callable[[Any, int, Any], Any]:
    def one(value: Any, length: int, padding: Any) -> Any:
        if not padding or length < 0:
            return None
        if len(value) >= length:
            return value[:length]
        need = length - len(value)
        fill = (padding * (need // len(padding) + 1))[:need]
        return fill + value if left else value + fill

    return one


@scalar("LPAD", _resolve_pad("LPAD"))
def _lpad(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Pad on the left with the padding to the length, or truncate to it."""
    return rows(ctx, "LPAD", args, rt, _pad(True))


@scalar("RPAD", _resolve_pad("RPAD"))
def _rpad(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Pad on the right with the padding to the length, or truncate to it."""
    return rows(ctx, "RPAD", args, rt, _pad(False))


# --- REPLACE, SPLIT, SPLIT_TO_MAP ----------------------------------------------------------------


def _resolve_replace(arg_types: Types) -> SqlType:
    check("REPLACE", "(STRING, STRING, STRING)", arg_types, STRING, STRING, STRING)
    return STRING


@scalar("REPLACE", _resolve_replace)
def _replace(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Replace every occurrence of a substring with another string."""
    same_old, old = constant(args[1])
    same_new, new = constant(args[2])
    if same_old and same_new and old and new is not None:
        return mask_nulls(pc.replace_substring(args[0], old, new), *args)
    return rows(ctx, "REPLACE", args, rt, lambda s, o, n: s.replace(o, n))


def _resolve_split(arg_types: Types) -> SqlType:
    if len(arg_types) == 2 and arg_types[0] == arg_types[1] and arg_types[0] in (STRING, BYTES):
        return array(arg_types[0])
    reject("SPLIT", "(STRING, STRING) or (BYTES, BYTES)", arg_types)


def _split_one(value: Any, delimiter: Any) -> list[Any]:
    if delimiter:
        return list(value.split(delimiter))
    if not value:
        return [value]
    return [value[i : i + 1] for i in range(len(value))]


@scalar("SPLIT", _resolve_split)
def _split(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Split a string or bytes around a literal delimiter (empty: into characters or bytes)."""
    same, delim = constant(args[1])
    if same and delim:
        out = pc.split_pattern(args[0], delim)
        return mask_nulls(out.cast(rt.to_arrow()), *args)
    return rows(ctx, "SPLIT", args, rt, _split_one)


def _resolve_split_to_map(arg_types: Types) -> SqlType:
    check("SPLIT_TO_MAP", "(STRING, STRING, STRING)", arg_types, STRING, STRING, STRING)
    return map_(STRING, STRING)


def _split_to_map_one(value: str, entry: str, kv: str) -> list[tuple[str, str]] | None:
    if not entry or not kv or entry == kv:
        return None
    out: dict[str, str] = {}
    for part in value.split(entry):
        if part and kv in part:
            pieces = part.split(kv)
            out[pieces[0]] = pieces[1]
    return list(out.items())


@scalar("SPLIT_TO_MAP", _resolve_split_to_map)
def _split_to_map(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Split a string into entries, and each entry into key and value, giving a map."""
    return rows(ctx, "SPLIT_TO_MAP", args, rt, _split_to_map_one)


# --- regular expressions -------------------------------------------------------------------------


@lru_cache(maxsize=256)
def java_regex(pattern: str) -> re.Pattern[str]:
    """Compile a Java regular expression as Python's `re` (the common syntax is shared)."""
    translated = re.sub(r"\\p\{(Alpha|Alnum|Digit|Upper|Lower|Space|Punct)\}", _posix, pattern)
    translated = re.sub(r"\(\?<([A-Za-z][A-Za-z0-9]*)>", r"(?P<\1>", translated)
    try:
        return re.compile(translated)
    except re.error as e:
        raise ValueError(f"invalid regular expression {pattern!r}: {e}") from None


_POSIX = {
    "Alpha": "[A-Za-z]",
    "Alnum": "[A-Za-z0-9]",
    "Digit": "[0-9]",
    "Upper": "[A-Z]",
    "Lower": "[a-z]",
    "Space": r"[ \t\n\x0b\f\r]",
    "Punct": r"""[!-/:-@\[-`{-~]""",
}


def _posix(m: re.Match[str]) -> str:
    return _POSIX[m[1]]


@lru_cache(maxsize=256)
def _java_replacement(replacement: str) -> Callable[[re.Match[str]], str]:
    """Turn a Java replacement string ($1, ${name}, backslash escapes) into a function."""
    parts: list[str | int] = []
    i, n = 0, len(replacement)
    literal: list[str] = []
    while i < n:
        c = replacement[i]
        if c == "\\" and i + 1 < n:
            literal.append(replacement[i + 1])
            i += 2
        elif c == "$" and i + 1 < n and replacement[i + 1] == "{":
            end = replacement.index("}", i)
            parts.extend(["".join(literal), -1])
            parts.append(replacement[i + 2 : end])
            literal = []
            i = end + 1
        elif c == "$" and i + 1 < n and replacement[i + 1].isdigit():
            j = i + 1
            while j < n and replacement[j].isdigit():
                j += 1
            parts.extend(["".join(literal), int(replacement[i + 1 : j])])
            literal = []
            i = j
        elif c in "\\$":
            raise ValueError(f"invalid replacement {replacement!r}")
        else:
            literal.append(c)
            i += 1
    parts.append("".join(literal))

    def expand(m: re.Match[str]) -> str:
        out: list[str] = []
        named = False
        for p in parts:
            if p == -1:
                named = True
            elif named:
                out.append(m.group(str(p)) or "")
                named = False
            elif isinstance(p, int):
                out.append(m.group(p) or "")
            else:
                out.append(p)
        return "".join(out)

    return expand


def _resolve_regexp_extract(name: str, result: SqlType) -> Callable[[Types], SqlType]:
    accepts = "(STRING pattern, STRING input[, INTEGER group])"

    def resolve(arg_types: Types) -> SqlType:
        if len(arg_types) not in (2, 3):
            reject(name, accepts, arg_types)
        check(name, accepts, arg_types, STRING, STRING, *([INTEGER] * (len(arg_types) - 2)))
        return result

    return resolve


def _group_of(p: re.Pattern[str], group: int) -> bool:
    return 0 <= group <= p.groups


def regexp_extract_row(pattern: str, s: str, group: int = 0) -> str | None:
    """One row of REGEXP_EXTRACT: the reference of the column path (`regex_columns`)."""
    p = java_regex(pattern)
    if not _group_of(p, group):
        return None
    m = p.search(s)
    return m.group(group) if m else None


@scalar("REGEXP_EXTRACT", _resolve_regexp_extract("REGEXP_EXTRACT", STRING))
def _regexp_extract(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the first match of a regular expression (or one capturing group of it)."""
    same_pattern, pattern = constant(args[0])
    same_group, group = constant(args[2]) if len(args) > 2 else (True, 0)
    if same_pattern and same_group and pattern is not None and group is not None:
        form = re2_form(pattern)
        if form is not None and 0 <= group < len(form.always) and form.always[group]:
            try:
                out = extract(args[1], form, group)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass  # a pattern RE2 refuses after all: row by row
            else:
                return mask_nulls(out, *args)
    return rows(ctx, "REGEXP_EXTRACT", args, rt, regexp_extract_row)


@scalar("REGEXP_EXTRACT_ALL", _resolve_regexp_extract("REGEXP_EXTRACT_ALL", array(STRING)))
def _regexp_extract_all(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return every match of a regular expression (or one capturing group of each)."""

    def one(pattern: str, s: str, group: int = 0) -> list[str | None] | None:
        p = java_regex(pattern)
        if not _group_of(p, group):
            return None
        return [m.group(group) for m in p.finditer(s)]

    return rows(ctx, "REGEXP_EXTRACT_ALL", args, rt, one)


def _resolve_regexp_replace(arg_types: Types) -> SqlType:
    check(
        "REGEXP_REPLACE",
        "(STRING, STRING regex, STRING replacement)",
        arg_types,
        STRING,
        STRING,
        STRING,
    )
    return STRING


@scalar("REGEXP_REPLACE", _resolve_regexp_replace)
def _regexp_replace(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Replace every match of a regular expression (replacement may use $1 groups)."""

    def one(s: str, pattern: str, replacement: str) -> str:
        return java_regex(pattern).sub(_java_replacement(replacement), s)

    return rows(ctx, "REGEXP_REPLACE", args, rt, one)


def regex_split(p: re.Pattern[str], s: str) -> list[str]:
    """Split like ksqlDB: Guava's splitter, or Java's String.split for empty-matching regexes."""
    if p.match("") is not None and p.fullmatch("") is not None:
        parts: list[str] = []
        last = 0
        for m in p.finditer(s):
            if m.end() == 0:
                continue
            if m.start() == m.end() and m.start() == len(s):
                continue
            parts.append(s[last : m.start()])
            last = m.end()
        parts.append(s[last:])
        while len(parts) > 1 and parts[-1] == "":
            parts.pop()
        return parts
    out: list[str] = []
    last = 0
    for m in p.finditer(s):
        out.append(s[last : m.start()])
        last = m.end()
    out.append(s[last:])
    return out


def _resolve_regexp_split(arg_types: Types) -> SqlType:
    check("REGEXP_SPLIT_TO_ARRAY", "(STRING, STRING regex)", arg_types, STRING, STRING)
    return array(STRING)


@scalar("REGEXP_SPLIT_TO_ARRAY", _resolve_regexp_split)
def _regexp_split(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Split a string around the matches of a regular expression."""
    return rows(
        ctx, "REGEXP_SPLIT_TO_ARRAY", args, rt, lambda s, pat: regex_split(java_regex(pat), s)
    )


# --- masks ---------------------------------------------------------------------------------------

_DEFAULT_MASKS = ("X", "x", "n", "-")


def _mask_char(c: str, masks: Sequence[str | None]) -> str:
    cat = unicodedata.category(c)
    m = (
        masks[0]
        if cat == "Lu"
        else masks[1]
        if cat == "Ll"
        else masks[2]
        if cat == "Nd"
        else masks[3]
    )
    return c if m is None else m


def _masks(values: Sequence[Any]) -> list[str | None]:
    out: list[str | None] = []
    for v in values:
        if v is not None and len(v) != 1:
            raise ValueError(f"mask character must be one character, not {v!r}")
        out.append(v)
    return out


def _mask_text(s: str, masks: Sequence[str | None]) -> str:
    return "".join(_mask_char(c, masks) for c in s)


def _resolve_mask(name: str, with_count: bool) -> Callable[[Types], SqlType]:
    head = "STRING, INTEGER" if with_count else "STRING"
    accepts = f"({head}) or ({head}, STRING upper, STRING lower, STRING digit, STRING other)"
    fixed = 2 if with_count else 1

    def resolve(arg_types: Types) -> SqlType:
        if len(arg_types) not in (fixed, fixed + 4):
            reject(name, accepts, arg_types)
        params = [STRING, INTEGER][:fixed] + [STRING] * (len(arg_types) - fixed)
        check(name, accepts, arg_types, *params)
        return STRING

    return resolve


def _register_mask(name: str, split: Callable[[str, int], tuple[str, str, str]] | None) -> None:
    fixed = 1 if split is None else 2

    def evaluate(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
        def one(s: Any, *rest: Any) -> str | None:
            count = rest[0] if split is not None else 0
            masks = _masks(rest[fixed - 1 :]) if len(rest) > fixed - 1 else list(_DEFAULT_MASKS)
            if split is not None and count is None:
                return None
            if count < 0:
                raise ValueError(f"{name} needs a non-negative number of characters")
            if s is None:
                return None
            if split is None:
                return _mask_text(s, masks)
            keep_before, masked, keep_after = split(s, count)
            return keep_before + _mask_text(masked, masks) + keep_after

        return rows(ctx, name, args, rt, one, skip_nulls=False)

    doc = {
        "MASK": "Mask upper, lower, digit and other characters (defaults X, x, n, -).",
        "MASK_LEFT": "Mask the first n characters.",
        "MASK_RIGHT": "Mask the last n characters.",
        "MASK_KEEP_LEFT": "Mask all but the first n characters.",
        "MASK_KEEP_RIGHT": "Mask all but the last n characters.",
    }[name]
    scalar(name, _resolve_mask(name, split is not None), description=doc, handles_nulls=True)(
        evaluate
    )


_register_mask("MASK", None)
_register_mask("MASK_LEFT", lambda s, n: ("", s[:n], s[n:]))
_register_mask("MASK_RIGHT", lambda s, n: (s[: max(len(s) - n, 0)], s[max(len(s) - n, 0) :], ""))
_register_mask("MASK_KEEP_LEFT", lambda s, n: (s[:n], s[n:], ""))
_register_mask(
    "MASK_KEEP_RIGHT", lambda s, n: ("", s[: max(len(s) - n, 0)], s[max(len(s) - n, 0) :])
)


# --- CHR, ELT, FIELD -----------------------------------------------------------------------------


def _resolve_chr(arg_types: Types) -> SqlType:
    if len(arg_types) != 1 or arg_types[0] not in (INTEGER, STRING):
        reject("CHR", "(INTEGER) or (STRING)", arg_types)
    return STRING


def _chr_one(v: Any) -> str | None:
    if isinstance(v, int):
        if not 0 <= v <= 0x10FFFF or 0xD800 <= v <= 0xDFFF:
            return None
        return chr(v)
    if len(v) < 6 or not v.startswith("\\u"):
        return None
    decoded = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m[1], 16)), v)
    try:
        return decoded.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        return None


@scalar("CHR", _resolve_chr)
def _chr(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the character of a code point, given as a number or as a '\\uXXXX' string."""
    return rows(ctx, "CHR", args, rt, _chr_one)


def _resolve_elt(arg_types: Types) -> SqlType:
    if not arg_types or arg_types[0] != INTEGER or any(t != STRING for t in arg_types[1:]):
        reject("ELT", "(INTEGER, STRING, ...)", arg_types)
    return STRING


@scalar("ELT", _resolve_elt, handles_nulls=True)
def _elt(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the n-th (1-based) of the string arguments after n, or NULL when out of range."""

    def one(n: Any, *values: Any) -> Any:
        if n is None or n < 1 or n > len(values):
            return None
        return values[n - 1]

    return rows(ctx, "ELT", args, rt, one, skip_nulls=False)


def _resolve_field(arg_types: Types) -> SqlType:
    if not arg_types or any(t != STRING for t in arg_types):
        reject("FIELD", "(STRING, STRING, ...)", arg_types)
    return INTEGER


@scalar("FIELD", _resolve_field, handles_nulls=True)
def _field(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the 1-based position of the first argument among the others, or 0."""

    def one(s: Any, *values: Any) -> int:
        if s is None:
            return 0
        for i, v in enumerate(values):
            if v == s:
                return i + 1
        return 0

    return rows(ctx, "FIELD", args, rt, one, skip_nulls=False)
