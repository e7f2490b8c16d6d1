"""Words and variables: splitting an instruction's text into words and expanding one word.

Follows the Dockerfile reference, "Environment replacement" (BuildKit's ``shell.Lex``
and ``parseWords``): ``$VAR``, ``${VAR}``, ``${VAR:-word}``, ``${VAR-word}``,
``${VAR:+word}``, ``${VAR+word}``, ``${VAR:?msg}``, ``${VAR?msg}``, quote removal and
the escape character of the ``# escape=`` directive.  Which variables are in scope is
the parser's business (:mod:`.parser`); this module only reads the mapping it is given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from strata.build.containerfile.values import ContainerfileError

__all__ = ["expand_word", "split_words"]


def split_words(text: str, escape: str) -> list[tuple[str, int]]:
    """Split on unquoted, unescaped whitespace; words keep their quotes and escapes.

    Returns ``(word, end_offset)`` pairs (BuildKit ``parseWords``).
    """
    words: list[tuple[str, int]] = []
    current: list[str] = []
    quote: str | None = None
    in_word = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quote is None and ch.isspace():
            if in_word:
                words.append(("".join(current), i))
                current, in_word = [], False
            i += 1
            continue
        in_word = True
        if ch == escape:
            if i + 1 < len(text):
                current.append(text[i : i + 2])
            i += 2
            continue
        if quote is None and ch in "'\"":
            quote = ch
        elif ch == quote:
            quote = None
        current.append(ch)
        i += 1
    if in_word:
        words.append(("".join(current), len(text)))
    return words


_NAME_CHARS = re.compile(r"[A-Za-z0-9_]+")


class _Expander:
    """Quote removal, escapes and ``$``-substitution for one word (BuildKit ``shell.Lex``)."""

    def __init__(self, text: str, env: Mapping[str, str], escape: str, line: int | None) -> None:
        self.s = text
        self.i = 0
        self.env = env
        self.escape = escape
        self.line = line

    def error(self, message: str) -> ContainerfileError:
        return ContainerfileError(f"{message} in {self.s!r}", self.line)

    def process(self, stop: str | None = None) -> str:
        out: list[str] = []
        while self.i < len(self.s):
            ch = self.s[self.i]
            if stop is not None and ch == stop:
                self.i += 1
                return "".join(out)
            if ch == "'":
                end = self.s.find("'", self.i + 1)
                if end < 0:
                    raise self.error("unterminated single quote")
                out.append(self.s[self.i + 1 : end])
                self.i = end + 1
            elif ch == '"':
                out.append(self.double_quoted())
            elif ch == "$":
                out.append(self.dollar())
            elif ch == self.escape:
                out.append(self.s[self.i + 1 : self.i + 2])
                self.i += 2
            else:
                out.append(ch)
                self.i += 1
        if stop is not None:
            raise self.error(f"missing {stop!r}")
        return "".join(out)

    def double_quoted(self) -> str:
        out: list[str] = []
        self.i += 1
        while self.i < len(self.s):
            ch = self.s[self.i]
            if ch == '"':
                self.i += 1
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            if ch == self.escape and self.s[self.i + 1 : self.i + 2] in ('"', "$", self.escape):
                self.i += 1
                ch = self.s[self.i]
            out.append(ch)
            self.i += 1
        raise self.error("unterminated double quote")

    def dollar(self) -> str:
        self.i += 1
        if self.s[self.i : self.i + 1] == "{":
            return self.braced()
        match = _NAME_CHARS.match(self.s, self.i)
        if match is None:
            return "$"
        self.i = match.end()
        return self.env.get(match.group(), "")

    def braced(self) -> str:
        self.i += 1
        match = _NAME_CHARS.match(self.s, self.i)
        if match is None:
            raise self.error("bad substitution")
        name = match.group()
        self.i = match.end()
        value = self.env.get(name)
        if self.s[self.i : self.i + 1] == "}":
            self.i += 1
            return value or ""
        colon = self.s[self.i : self.i + 1] == ":"
        self.i += colon
        op = self.s[self.i : self.i + 1]
        if op not in ("-", "+", "?"):
            raise self.error(f"unsupported substitution modifier {op!r} for ${{{name}}}")
        self.i += 1
        word = self.process(stop="}")
        unset = value is None or (colon and value == "")
        if op == "-":
            return word if unset else (value or "")
        if op == "+":
            return "" if unset else word
        if unset:
            raise self.error(f"{name}: {word or 'parameter not set or empty'}")
        return value or ""


def expand_word(
    text: str, env: Mapping[str, str], *, escape: str = "\\", line: int | None = None
) -> str:
    """Expand one Dockerfile word: quotes removed, escapes applied, ``$VAR`` substituted."""
    return _Expander(text, env, escape, line).process()

