"""Tokens of ksqlDB's SQL, each with its line and column (1-based) for error messages."""

from __future__ import annotations

from dataclasses import dataclass

from hispeed.errors import SqlError

# Token kinds
IDENT = "IDENT"  # unquoted identifier or keyword (value upper-cased)
QUOTED = "QUOTED"  # `back-quoted` identifier (value as written)
STRING = "STRING"
INTEGER = "INTEGER"
DECIMAL = "DECIMAL"  # 1.5
FLOAT = "FLOAT"  # 1.5E3
OP = "OP"
EOF = "EOF"

_OPERATORS = sorted(
    [
        ":=",
        "<>",
        "!=",
        "<=",
        ">=",
        "->",
        "=>",
        "||",
        "=",
        "<",
        ">",
        "+",
        "-",
        "*",
        "/",
        "%",
        "(",
        ")",
        "[",
        "]",
        ",",
        ";",
        ".",
        ":",
    ],
    key=len,
    reverse=True,
)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    value: str
    line: int
    column: int
    start: int  # character index in the text
    end: int

    def is_word(self, *words: str) -> bool:
        return self.kind == IDENT and self.value in words

    def is_op(self, *ops: str) -> bool:
        return self.kind == OP and self.value in ops

    def describe(self) -> str:
        if self.kind == EOF:
            return "the end of the statement"
        if self.kind == STRING:
            return f"'{self.value}'"
        return f"'{self.value}'"


def tokenize(
    text: str, line: int = 1, column: int = 1, max_identifier_length: int | None = None
) -> list[Token]:
    """Split SQL text into tokens; comments and whitespace are dropped. An identifier longer
    than `max_identifier_length` characters (None: no limit) is a SqlError at its place."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    line_start = 0  # index where the current line starts
    first_line_offset = column - 1

    def pos(at: int) -> tuple[int, int]:
        col = at - line_start + 1
        if cur_line == line:
            col += first_line_offset
        return cur_line, col

    cur_line = line
    while i < n:
        c = text[i]
        if c == "\n":
            cur_line += 1
            i += 1
            line_start = i
            continue
        if c in " \t\r\f":
            i += 1
            continue
        if text.startswith("--", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        if text.startswith("/*", i):
            close = text.find("*/", i + 2)
            if close < 0:
                ln, col = pos(i)
                raise SqlError("Syntax Error\na /* comment is never closed with */", ln, col)
            for _ in range(text.count("\n", i, close)):
                cur_line += 1
            if "\n" in text[i:close]:
                line_start = text.rfind("\n", i, close) + 1
            i = close + 2
            continue
        ln, col = pos(i)
        start = i
        if c == "'":
            value, i = _quoted(text, i, "'", ln, col, "string")
            tokens.append(Token(STRING, value, ln, col, start, i))
        elif c == "`" or c == '"':
            value, i = _quoted(text, i, c, ln, col, "quoted identifier")
            _check_length(value, max_identifier_length, ln, col)
            tokens.append(Token(QUOTED, value, ln, col, start, i))
        elif c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit()):
            j = i
            while j < n and text[j].isdigit():
                j += 1
            kind = INTEGER
            if j < n and text[j] == "." and not text.startswith("..", j):
                kind = DECIMAL
                j += 1
                while j < n and text[j].isdigit():
                    j += 1
            if j < n and text[j] in "eE":
                k = j + 1
                if k < n and text[k] in "+-":
                    k += 1
                if k < n and text[k].isdigit():
                    kind = FLOAT
                    j = k
                    while j < n and text[j].isdigit():
                        j += 1
            if j < n and (text[j].isalpha() or text[j] == "_") and kind == INTEGER:
                # ksqlDB's identifiers may start with digits (`1R`), if letters follow
                while j < n and (text[j].isalnum() or text[j] in "_$@"):
                    j += 1
                _check_length(text[i:j], max_identifier_length, ln, col)
                tokens.append(Token(IDENT, text[i:j].upper(), ln, col, start, j))
                i = j
                continue
            if j < n and (text[j].isalpha() or text[j] == "_"):
                raise SqlError(
                    f"Syntax Error\nSyntax error at or near '{text[i : j + 1]}': not a number",
                    ln,
                    col,
                )
            tokens.append(Token(kind, text[i:j], ln, col, start, j))
            i = j
        elif c.isalpha() or c == "_" or c == "$":
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] in "_$@"):
                j += 1
            _check_length(text[i:j], max_identifier_length, ln, col)
            tokens.append(Token(IDENT, text[i:j].upper(), ln, col, start, j))
            i = j
        else:
            for op in _OPERATORS:
                if text.startswith(op, i):
                    tokens.append(Token(OP, op, ln, col, start, i + len(op)))
                    i += len(op)
                    break
            else:
                hint = ""
                if c in "\u2018\u2019\u201c\u201d":
                    hint = (
                        " (a typographic quote: write string literals with straight single "
                        "quotes, 'like this')"
                    )
                raise SqlError(
                    f"Syntax Error\nSyntax error at or near '{c}': unexpected character{hint}",
                    ln,
                    col,
                )
    ln, col = pos(n)
    tokens.append(Token(EOF, "", ln, col, n, n))
    return tokens


def _check_length(word: str, limit: int | None, line: int, column: int) -> None:
    if limit is not None and len(word) > limit:
        raise SqlError(
            f"an identifier of {len(word)} characters ({word[:20]}...): identifiers are at most "
            f"{limit} characters (the server's max_identifier_length)",
            line,
            column,
        )


def _quoted(text: str, i: int, quote: str, line: int, column: int, what: str) -> tuple[str, int]:
    """Read a quoted token starting at text[i]; a doubled quote stands for one."""
    out = []
    j = i + 1
    n = len(text)
    while j < n:
        c = text[j]
        if c == quote:
            if j + 1 < n and text[j + 1] == quote:
                out.append(quote)
                j += 2
                continue
            return "".join(out), j + 1
        out.append(c)
        j += 1
    raise SqlError(f"Syntax Error\na {what} starting with {quote} is never closed", line, column)
