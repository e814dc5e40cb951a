"""Placing values into lifecycle scripts so that the shell takes each one as a literal string.

A recipe writes ``echo {configuration:/message}``; Greengrass pastes the value into the script
text, so a value ``x; id > FILE #`` becomes shell code (and a ``RequiresPrivilege`` step runs it
as root). Sprig never pastes a configuration value into script text. Each value is passed in an
environment variable of the step's process and the script gets a *reference* to it that suits
the shell quoting context at the variable's position:

==========================  ===========================  ==========================================
position                    reference                    example: recipe text -> script text
==========================  ===========================  ==========================================
unquoted                    ``"${V}"``                   ``--name {c}`` -> ``--name "${V}"``
inside ``"..."``            ``${V}``                     ``"hi {c}!"`` -> ``"hi ${V}!"``
inside ``'...'``            ``'"${V}"'``                 ``'{c}'`` -> ``''"${V}"''``
a comment                   ``${V}``                     (never run)
``<<EOF`` here-doc body     ``${V}``                     (expanded once, never re-read)
``$(( ... ))``              ``${V}``                     only if the value is an integer
``<<'EOF'`` here-doc body   the value itself             only if it cannot end the body
==========================  ===========================  ==========================================

The result of a parameter expansion is never parsed again for quotes, ``;``, ``$(...)`` or
backticks, so whatever the value holds reaches the command as data, in one word (unquoted
positions are double-quoted, so no field splitting or globbing either). ``$(...)`` and ``${...}``
open nested contexts (quotes inside them start afresh). A backquoted command is what the shell
makes of it: its backslashes before ``$``, backquote and backslash are removed, the result is
scanned as a script of its own, and the placed text is escaped back. A backslash directly before
a variable is kept as a literal backslash.

Here-documents. A body whose delimiter is unquoted (``<<EOF``) undergoes parameter expansion,
so ``${V}`` is safe there. A body whose delimiter is quoted (``<<'EOF'``) is literal: nothing in
it is expanded, so the value must be written into it. That is safe for the shell running the
script only while the value cannot end the body early, so a value holding a newline, or making
its line equal to the delimiter, is refused (:class:`PlacementError`). Whatever *reads* the body
(``sh <<'EOF'``, ``python3 - <<'EOF'``) interprets it, exactly as a program given a value as
an argument (``sh -c "{c}"``, ``eval``) may: Sprig guarantees the value reaches the command as
one literal string, not what the command then does with it.

Arithmetic. Bash evaluates array subscripts inside ``$(( ))`` (``a[$(cmd)]`` runs ``cmd``), so
a variable there must hold an integer; anything else is refused.

What the scanner does not model (the reference is then still an environment reference, so
never code; at worst a value is split into words or kept literally): bash-only syntax
(``[[ ]]``, here-strings and ``$'...'`` are read as plain words and quotes), aliases. ``case``
statements are followed so that a pattern's ``)`` does not end an enclosing ``$(``. A variable
used as a here-document delimiter is refused.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from sprig.errors import SprigError

ENV_PREFIX = "SPRIG_CONFIG_"
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")
_OPERATOR_CHARS = frozenset(";&|<>()")
_BLANKS = frozenset(" \t")
_SUBJECT, _PATTERN, _BODY = "subject", "pattern", "body"      # where a ``case`` is
#: reserved words after which the next word is again in command position
_LEADING_KEYWORDS = frozenset({"then", "else", "elif", "if", "do", "while", "until", "{", "!"})


class PlacementError(SprigError):
    """A value that cannot be placed safely at its position in a script."""


class Context(enum.Enum):
    """The shell quoting context at a variable's position."""

    UNQUOTED = "unquoted"
    DOUBLE_QUOTED = "double-quoted"
    SINGLE_QUOTED = "single-quoted"
    COMMENT = "comment"
    HEREDOC = "here-document body"
    LITERAL_HEREDOC = "quoted here-document body"
    ARITHMETIC = "arithmetic expansion"


@dataclass(frozen=True)
class Value:
    """One variable's value to place into a script; ``label`` (``{configuration:/x}``) names it
    in errors and identifies it (equal labels share one environment variable)."""

    label: str
    text: str


@dataclass(frozen=True)
class Placed:
    """The script text to run, the environment variables it refers to, and the context each
    value was found in (in order: for tests and error messages)."""

    script: str
    env: dict[str, str]
    contexts: tuple[Context, ...]


def place(parts: Sequence[str | Value]) -> Placed:
    """Join ``parts`` into a script, each :class:`Value` as a reference to an environment
    variable (or, in a quoted here-document body, as checked text).

    Raises:
        PlacementError: naming the variable, when its value cannot be placed safely.
    """
    items: list[str | Value] = []
    for part in parts:
        if isinstance(part, Value):
            if "\0" in part.text:
                raise PlacementError(f"{part.label}: the value holds a NUL character, "
                                     "which no script or environment can carry")
            items.append(part)
        else:
            items.extend(part)
    scanner = _Scanner(items)
    script = scanner.run()
    return Placed(script, scanner.env, tuple(scanner.contexts))


def reference(name: str, context: Context) -> str:
    """The script text that expands environment variable ``name`` as one literal string."""
    if context is Context.UNQUOTED:
        return f'"${{{name}}}"'
    if context is Context.SINGLE_QUOTED:
        return f"'\"${{{name}}}\"'"
    return f"${{{name}}}"


class _Kind(enum.Enum):
    CMD = "command"          # top level or $( ); ``closer`` ends it
    DQ = "double quotes"
    SQ = "single quotes"
    PARAM = "${...}"
    ARITH = "$((...))"
    COMMENT = "comment"
    HEREDOC = "here-document body"


@dataclass
class _Frame:
    kind: _Kind
    closer: str | None = None        # CMD: ")" for $( ), None at the top
    depth: int = 0                   # CMD, ARITH: open (
    quoted: bool = False             # PARAM: inside double quotes
    word_start: bool = True          # CMD: the next character starts a word (for "#")
    word: str = ""                   # CMD: the current word ("\0" for a quoted part)
    command_start: bool = True       # CMD: the current word is in command position
    case: list[str] = field(default_factory=list)   # CMD: open ``case`` statements' states
    heredoc: _Heredoc | None = None  # HEREDOC: which one
    line_start: bool = True          # HEREDOC: at the start of a body line


@dataclass
class _Heredoc:
    delimiter: str
    literal: bool                    # the delimiter was quoted: the body is not expanded
    strip_tabs: bool                 # <<-


@dataclass
class _Scanner:
    """One script (or the inside of a backquoted command): ``items`` are its characters and
    values; ``env``, ``names`` and ``contexts`` are shared with the scanners of backquotes."""

    items: list[str | Value]
    env: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    contexts: list[Context] = field(default_factory=list)
    out: list[str] = field(default_factory=list)
    pending: list[_Heredoc] = field(default_factory=list)
    stack: list[_Frame] = field(default_factory=list)
    escape_pending: bool = False
    i: int = 0

    def run(self) -> str:
        self.stack = [_Frame(_Kind.CMD)]
        while self.i < len(self.items):
            top = self.stack[-1]
            if top.kind is _Kind.HEREDOC and top.line_start:
                self._heredoc_line(top)
                continue
            item = self.items[self.i]
            if isinstance(item, Value):
                self._value(item, top)
                self.i += 1
                continue
            self.escape_pending = False
            if item == "`" and top.kind not in (_Kind.SQ, _Kind.COMMENT):
                self._backquote(in_double_quotes=self._context(top) is Context.DOUBLE_QUOTED)
                if top.kind is _Kind.CMD:
                    top.word_start = False
                continue
            getattr(self, f"_in_{top.kind.name.lower()}")(item, top)
        return "".join(self.out)

    # -- helpers -----------------------------------------------------------------------------

    def _peek(self, offset: int = 1) -> str | Value | None:
        j = self.i + offset
        return self.items[j] if j < len(self.items) else None

    def _emit(self, text: str, advance: int | None = None) -> None:
        self.out.append(text)
        self.i += len(text) if advance is None else advance

    def _name(self, value: Value) -> str:
        name = self.names.get(value.label)
        if name is None:
            name = f"{ENV_PREFIX}{len(self.names) + 1}"
            self.names[value.label] = name
        return name

    def _context(self, top: _Frame) -> Context:
        if top.kind is _Kind.DQ or (top.kind is _Kind.PARAM and top.quoted):
            return Context.DOUBLE_QUOTED
        if top.kind is _Kind.SQ:
            return Context.SINGLE_QUOTED
        if top.kind is _Kind.COMMENT:
            return Context.COMMENT
        if top.kind is _Kind.ARITH:
            return Context.ARITHMETIC
        if top.kind is _Kind.HEREDOC:
            assert top.heredoc is not None
            return Context.LITERAL_HEREDOC if top.heredoc.literal else Context.HEREDOC
        return Context.UNQUOTED

    def _value(self, value: Value, top: _Frame) -> None:
        context = self._context(top)
        if context is Context.ARITHMETIC and not _INTEGER.fullmatch(value.text):
            raise PlacementError(
                f"{value.label} is used in an arithmetic expansion $((...)) and its value "
                f"{_shown(value.text)} is not an integer; allowed there: an integer")
        self.contexts.append(context)
        name = self._name(value)
        self.env[name] = value.text
        prefix = "\\" if self.escape_pending else ""
        self.escape_pending = False
        self.out.append(prefix + reference(name, context))
        if top.kind is _Kind.CMD:
            top.word_start = False
            top.word += "\0"            # a value is never a reserved word

    def _backslash(self, escapes: str | None) -> None:
        """A backslash: escapes the next character (any if ``escapes`` is None, else those in
        it); before a variable it must not escape the reference, so one is added."""
        nxt = self._peek()
        if isinstance(nxt, str) and (escapes is None or nxt in escapes):
            self._emit("\\" + nxt)
        else:
            self._emit("\\")
            self.escape_pending = isinstance(nxt, Value)

    def _dollar(self, top: _Frame, *, quoted: bool) -> bool:
        """``$(``, ``$((``, ``${`` (and ``$'`` / ``$"`` unquoted); False if plain ``$``."""
        nxt, after = self._peek(), self._peek(2)
        if nxt == "(" and after == "(":
            self._emit("$((")
            self.stack.append(_Frame(_Kind.ARITH))
        elif nxt == "(":
            self._emit("$(")
            self.stack.append(_Frame(_Kind.CMD, closer=")"))
        elif nxt == "{":
            self._emit("${")
            self.stack.append(_Frame(_Kind.PARAM, quoted=quoted))
        elif nxt == "'" and not quoted:
            self._emit("$'")
            self.stack.append(_Frame(_Kind.SQ))
        elif nxt == '"' and not quoted:
            self._emit('$"')
            self.stack.append(_Frame(_Kind.DQ))
        else:
            return False
        return True

    # -- contexts ----------------------------------------------------------------------------

    def _in_cmd(self, c: str, top: _Frame) -> None:
        if c in _BLANKS or c == "\n" or c in _OPERATOR_CHARS:
            self._end_word(top)
        if c == "\\":
            self._backslash(None)
            top.word_start = top.word_start and self.out[-1] == "\\\n"
            top.word += "" if self.out[-1] == "\\\n" else "\0"
        elif c in "'\"":
            self._emit(c)
            self.stack.append(_Frame(_Kind.SQ if c == "'" else _Kind.DQ))
            top.word_start = False
            top.word += "\0"
        elif c == "$":
            if not self._dollar(top, quoted=False):
                self._emit(c)
            top.word_start = False
            top.word += "\0"
        elif c == "#" and top.word_start:
            self._emit(c)
            self.stack.append(_Frame(_Kind.COMMENT))
        elif c == "(":
            self._emit(c)
            if not (top.case and top.case[-1] == _PATTERN):   # (pattern) is not a subshell
                top.depth += 1
            top.word_start = top.command_start = True
        elif c == ")":
            self._emit(c)
            if top.case and top.case[-1] == _PATTERN:
                top.case[-1] = _BODY                            # pattern) ends the pattern
            elif top.depth > 0:
                top.depth -= 1
            elif top.closer == ")":
                self.stack.pop()
            top.word_start = top.command_start = True
        elif c == ";" and self._peek() == ";" and top.case and top.case[-1] == _BODY:
            self._emit(";;")
            top.case[-1] = _PATTERN
            top.word_start = True
        elif c == "<" and self._peek() == "<" and self._peek(2) == "<":
            self._emit("<<<")            # a bash here-string, not a here-document
            top.word_start = True
        elif c == "<" and self._peek() == "<":
            self._heredoc_operator()
            top.word_start = False
        elif c == "\n":
            self._emit(c)
            top.word_start = top.command_start = True
            if self.pending:
                self.stack.append(_Frame(_Kind.HEREDOC, heredoc=self.pending.pop(0)))
        else:
            self._emit(c)
            top.word_start = c in _BLANKS or c in _OPERATOR_CHARS
            if c in ";&|":
                top.command_start = True
            elif not top.word_start:
                top.word += c

    @staticmethod
    def _end_word(top: _Frame) -> None:
        """A word ended: follow ``case WORD in PATTERN) ... ;; esac`` so that a pattern's
        ``)`` is not taken for the end of an enclosing ``$(``."""
        word, top.word = top.word, ""
        if not word:
            return
        state = top.case[-1] if top.case else None
        if state == _SUBJECT and word == "in":
            top.case[-1] = _PATTERN
        elif word == "esac" and (state == _PATTERN or (state == _BODY and top.command_start)):
            top.case.pop()
        elif word == "case" and top.command_start:
            top.case.append(_SUBJECT)
        top.command_start = word in _LEADING_KEYWORDS

    def _in_dq(self, c: str, top: _Frame) -> None:
        if c == "\\":
            self._backslash('$`"\\\n')
        elif c == '"':
            self._emit(c)
            self.stack.pop()
        elif c == "$" and self._dollar(top, quoted=True):
            pass
        else:
            self._emit(c)

    def _in_sq(self, c: str, top: _Frame) -> None:
        self._emit(c)
        if c == "'":
            self.stack.pop()

    def _in_param(self, c: str, top: _Frame) -> None:
        if c == "\\":
            self._backslash(None if not top.quoted else '$`"\\}\n')
        elif c == "}":                   # the first one ends it: braces do not nest
            self._emit(c)
            self.stack.pop()
        elif c == "'" and not top.quoted:
            self._emit(c)
            self.stack.append(_Frame(_Kind.SQ))
        elif c == '"':
            self._emit(c)
            self.stack.append(_Frame(_Kind.DQ))
        elif c == "$" and self._dollar(top, quoted=top.quoted):
            pass
        else:
            self._emit(c)

    def _in_arith(self, c: str, top: _Frame) -> None:
        if c == "(":
            self._emit(c)
            top.depth += 1
        elif c == ")" and top.depth > 0:
            self._emit(c)
            top.depth -= 1
        elif c == ")" and self._peek() == ")":
            self._emit("))")
            self.stack.pop()
        elif c == "$" and self._dollar(top, quoted=True):
            pass
        elif c == "\\":
            self._backslash(None)
        else:
            self._emit(c)

    def _in_comment(self, c: str, top: _Frame) -> None:
        if c == "\n":
            self.stack.pop()             # the newline itself belongs to the command
        else:
            self._emit(c)

    def _in_heredoc(self, c: str, top: _Frame) -> None:
        """An unquoted here-document body: ``\\``, ``$`` and backquotes are special."""
        if c == "\\":
            self._backslash("$`\\\n")
        elif c == "$" and self._dollar(top, quoted=True):
            pass
        else:
            self._emit(c)
            top.line_start = c == "\n"

    def _backquote(self, *, in_double_quotes: bool) -> None:
        """```...```: the shell first drops the backslash before ``$``, backquote and backslash
        (and ``"`` inside double quotes), then runs the result as a script. So: undo that,
        place the values in the inner script, and escape the result back."""
        specials = '$`\\"' if in_double_quotes else "$`\\"
        inner: list[str | Value] = []
        j = self.i + 1
        while j < len(self.items) and self.items[j] != "`":
            item = self.items[j]
            nxt = self.items[j + 1] if j + 1 < len(self.items) else None
            if item == "\\" and isinstance(nxt, str):
                inner.extend([nxt] if nxt in specials else [item, nxt])
                j += 2
            else:
                inner.append(item)
                j += 1
        closed = j < len(self.items)
        if any(isinstance(x, Value) for x in inner):
            sub = _Scanner(inner, env=self.env, names=self.names, contexts=self.contexts)
            self.out.append("`" + _backquoted(sub.run(), specials) + ("`" if closed else ""))
        else:                            # nothing to place: the text as written
            self.out.append("".join(str(x) for x in self.items[self.i:j + 1]))
        self.i = j + 1

    # -- here-documents ----------------------------------------------------------------------

    def _heredoc_operator(self) -> None:
        """``<<`` or ``<<-``, blanks, then the delimiter word (quoted if any part is)."""
        self._emit("<<")
        strip = self._peek(0) == "-"
        if strip:
            self._emit("-")
        while self._peek(0) in _BLANKS:
            self._emit(str(self._peek(0)))
        word: list[str] = []
        literal = False
        quote: str | None = None
        while self.i < len(self.items):
            c = self.items[self.i]
            if isinstance(c, Value):
                raise PlacementError(f"{c.label} is used as a here-document delimiter; a "
                                     "delimiter must be written in the recipe")
            if quote is None and (c in _BLANKS or c == "\n" or c in _OPERATOR_CHARS):
                break
            self._emit(c)
            if quote is not None:
                if c == quote:
                    quote = None
                else:
                    word.append(c)
            elif c in "'\"":
                quote, literal = c, True
            elif c == "\\":
                literal = True
                nxt = self._peek(0)
                if isinstance(nxt, str):
                    self._emit(nxt)
                    word.append(nxt)
            else:
                word.append(c)
        self.pending.append(_Heredoc("".join(word), literal, strip))

    def _heredoc_line(self, top: _Frame) -> None:
        """At the start of a body line: the delimiter line ends the body; a literal body's
        line is copied with values as text, after checking they cannot end it early."""
        doc = top.heredoc
        assert doc is not None
        end = self.i
        while end < len(self.items) and self.items[end] != "\n":
            end += 1
        line = self.items[self.i:end]
        if doc.literal:
            text = "".join(self._literal(x) for x in line)
        else:
            text = "".join(reference(self._name(x), Context.HEREDOC)
                           if isinstance(x, Value) else x for x in line)
        stripped = text.lstrip("\t") if doc.strip_tabs else text
        if stripped == doc.delimiter:
            has_value = any(isinstance(x, Value) for x in line)
            if has_value:
                labels = ", ".join(x.label for x in line if isinstance(x, Value))
                raise PlacementError(f"{labels}: its value would end the here-document "
                                     f"(delimiter {doc.delimiter!r}) early")
            self._emit(text + ("\n" if end < len(self.items) else ""),
                       advance=end - self.i + 1)
            self.stack.pop()
            if self.pending:
                self.stack.append(_Frame(_Kind.HEREDOC, heredoc=self.pending.pop(0)))
            return
        top.line_start = False
        if doc.literal:
            for x in line:
                if isinstance(x, Value):
                    self.contexts.append(Context.LITERAL_HEREDOC)
            self._emit(text + ("\n" if end < len(self.items) else ""),
                       advance=end - self.i + 1)
            top.line_start = True
        # else: the line's characters are scanned one by one (_in_heredoc).

    def _literal(self, x: str | Value) -> str:
        if isinstance(x, str):
            return x
        if "\n" in x.text:
            raise PlacementError(
                f"{x.label} is used in a quoted here-document body (<<'EOF'), which is not "
                "expanded, so its value would be written as is; a value holding a newline "
                "could end the body early and is refused there (use an unquoted delimiter: "
                "<<EOF)")
        return x.text


def _backquoted(text: str, specials: str) -> str:
    """``text`` escaped so that the shell's backquote processing (which drops a backslash
    before one of ``specials``) gives it back; other backslashes are left as they are."""
    out = []
    for i, c in enumerate(text):
        if c == "\\" and (i + 1 == len(text) or text[i + 1] in specials):
            out.append("\\\\")
        elif c == "`":
            out.append("\\`")
        else:
            out.append(c)
    return "".join(out)


def _shown(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= 80 else shown[:77] + "..."
