"""The shell-context scanner: which context each variable is in, what is written there, and that
the real ``/bin/sh -c`` receives exactly the value, whatever it holds."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sprig.recipe.shell import Context, Placed, PlacementError, Value, place

HOSTILE = [
    "x; id > FILE #",
    "$(id > FILE)",
    "`id > FILE`",
    "'; id > FILE; echo '",
    '"; id > FILE; echo "',
    "a\nid > FILE\n",
    "\\",
    "ends with \\",
    "${HOME}",
    "$HOME",
    "* ?",
    "  two  words  ",
    "",
    "#not a comment",
    "-n",
    "EOF",
    "'\"'\"",
    "\t\ttabs",
    "é ünïcödé ☃",
]


def parts(template: str, value: str, label: str = "{configuration:/x}") -> list[str | Value]:
    """``template`` with each ``@`` replaced by the value."""
    out: list[str | Value] = []
    for i, text in enumerate(template.split("@")):
        if i:
            out.append(Value(label, value))
        out.append(text)
    return out


def sh(placed: Placed) -> str:
    result = subprocess.run(["/bin/sh", "-c", placed.script], capture_output=True,
                            env={**placed.env, "PATH": "/usr/bin:/bin"}, timeout=10)
    assert result.returncode == 0, (placed, result.stderr)
    return result.stdout.decode()         # bytes: no newline translation of a \r


@pytest.mark.parametrize(("template", "context"), [
    ("printf %s @", Context.UNQUOTED),
    ("--name=@", Context.UNQUOTED),
    ('echo "hello @!"', Context.DOUBLE_QUOTED),
    ("echo 'hello @'", Context.SINGLE_QUOTED),
    ("echo it\\'s @", Context.UNQUOTED),              # an escaped quote opens nothing
    ('echo "a\\"b @"', Context.DOUBLE_QUOTED),         # an escaped " inside "..." closes nothing
    ("echo 'a\\' @", Context.UNQUOTED),               # no escapes inside '...'
    ("echo \"'\" @", Context.UNQUOTED),
    ("echo '\"' @", Context.UNQUOTED),
    ("echo $(printf %s @)", Context.UNQUOTED),
    ('echo "$(printf %s @)"', Context.UNQUOTED),       # quotes start afresh inside $( )
    ("echo \"$(printf '%s' '@')\"", Context.SINGLE_QUOTED),
    ('echo "$(printf %s "@")"', Context.DOUBLE_QUOTED),
    ("echo `printf %s @`", Context.UNQUOTED),
    ('echo "`printf %s @`"', Context.UNQUOTED),
    ("echo $( (printf %s @) )", Context.UNQUOTED),
    ("echo $( (true) ) '@'", Context.SINGLE_QUOTED),  # the subshell's ) does not end $( )
    ("echo ${UNSET:-@}", Context.UNQUOTED),
    ('echo "${UNSET:-@}"', Context.DOUBLE_QUOTED),
    ("echo ${UNSET:-'@'}", Context.SINGLE_QUOTED),
    ("echo $((1 + @))", Context.ARITHMETIC),
    ("echo $(( (1) + @ ))", Context.ARITHMETIC),
    ("echo # @", Context.COMMENT),
    ("echo a#@", Context.UNQUOTED),                   # '#' inside a word is no comment
    ("echo '#' @", Context.UNQUOTED),
    ("# @\necho ok", Context.COMMENT),
    ("echo x;# @", Context.COMMENT),
    ("cat <<EOF\n@\nEOF", Context.HEREDOC),
    ("cat <<EOF\n'@'\nEOF", Context.HEREDOC),         # quotes are plain text in a body
    ("cat <<-EOF\n\t@\n\tEOF", Context.HEREDOC),
    ("cat <<'EOF'\n@\nEOF", Context.LITERAL_HEREDOC),
    ('cat <<"EOF"\n@\nEOF', Context.LITERAL_HEREDOC),
    ("cat <<\\EOF\n@\nEOF", Context.LITERAL_HEREDOC),
    ("cat <<EOF\nbody\nEOF\necho @", Context.UNQUOTED),
    ("cat <<EOF # comment\nbody\nEOF\necho '@'", Context.SINGLE_QUOTED),
    ("cat <<EOF\n'\nEOF\necho @", Context.UNQUOTED),  # the ' in the body opened nothing
    ("echo a \\\n @", Context.UNQUOTED),
    ("x=1 # it's\necho @", Context.UNQUOTED),         # a quote in a comment opens nothing
    ("echo $(case x in x) true;; esac) '@'", Context.SINGLE_QUOTED),  # pattern ) ends no $(
    ("echo $(case x in (x) echo @;; esac)", Context.UNQUOTED),
    ("echo \"${UNSET:-{x}\" '@'", Context.SINGLE_QUOTED),  # braces in ${ } do not nest
    ("echo `echo \\`echo '@'\\``", Context.SINGLE_QUOTED),  # nested backquotes
])
def test_context_of_each_position(template: str, context: Context) -> None:
    assert place(parts(template, "1")).contexts == (context,)


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize(("template", "expected"), [
    ("printf '[%s]' @", "[{v}]"),
    ("printf '[%s]' --name=@", "[--name={v}]"),
    ("printf '[%s]' \"pre @ post\"", "[pre {v} post]"),
    ("printf '[%s]' 'pre @ post'", "[pre {v} post]"),
    ("printf '[%s]' \"$(printf '%s' '@')\"", "[{v}]"),
    ("printf '[%s]' \"`printf '%s' @`\"", "[{v}]"),
    ("printf '[%s]' ${UNSET:-@}", "[{v}]"),
    ("printf '[%s]' \"${UNSET:-@}\"", "[{v}]"),
    ("printf '[%s]' @ # and @ in a comment", "[{v}]"),
    ("cat <<EOF\n[@]\nEOF", "[{v}]\n"),
    ("cat <<-EOF\n\t[@]\n\tEOF", "[{v}]\n"),
    ("printf '[%s]' @@", "[{v}{v}]"),
])
def test_the_shell_receives_exactly_the_value(template: str, expected: str, value: str) -> None:
    placed = place(parts(template, value))
    assert value == "" or value not in placed.script or value in ("-n", "EOF", "\\"), \
        "values are never script text"
    if "$(" in template or "`" in template:   # command substitution drops trailing newlines
        value = value.rstrip("\n")
    assert sh(placed) == expected.replace("{v}", value)


@settings(max_examples=60, deadline=None)
@given(st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",))),
       st.sampled_from(["printf '[%s]' @", "printf '[%s]' \"@\"", "printf '[%s]' '@'",
                        "printf '[%s]' \"$(printf '%s' @)\"", "printf '[%s]' x@y"]))
def test_any_value_reaches_the_shell_literally(value: str, template: str) -> None:
    expected = "[" + ("x" + value + "y" if "x@y" in template else value) + "]"
    if "$(" in template:     # command substitution drops trailing newlines, by definition
        expected = "[" + value.rstrip("\n") + "]"
    assert sh(place(parts(template, value))) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab \t\n'\"\\`$(){}#;<>-|&@"), max_size=60))
def test_any_script_without_values_is_unchanged_and_any_with_values_is_placed(text: str) -> None:
    assert place([text.replace("@", "")]).script == text.replace("@", "")
    try:
        placed = place(parts(text, "v"))
    except PlacementError:
        return
    assert len(placed.contexts) <= text.count("@")


@pytest.mark.parametrize(("template", "expected"), [
    ("printf '[%s]' $(case x in x) printf %s @;; esac) '@'", "[{v}][{v}]"),
    ("printf '[%s]' \"${UNSET:-{x}y}\" @", "[{xy}][{v}]"),
    ("printf '[%s]' `printf '%s' @`", "[{v}]"),
    ("printf '[%s]' \"`printf '%s' \\\"@\\\"`\"", "[{v}]"),    # \" is " in "`...`"
    ("printf '[%s]' `printf '%s' \\`printf '%s' '@'\\``", "[{v}]"),
    ("printf '[%s]' `printf '%s' \\\\ @`", "[{v}]"),      # \\ is \ : an escaped blank
])
def test_what_the_shell_makes_of_nested_forms(template: str, expected: str) -> None:
    value = "$(id);it's\"x\"`id`"      # no blanks: unquoted $( ) results are split
    assert sh(place(parts(template, value))) == expected.replace("{v}", value)


def test_equal_variables_share_one_environment_variable() -> None:
    placed = place(["echo ", Value("{configuration:/a}", "1"), " ",
                    Value("{configuration:/b}", "2"), " ", Value("{configuration:/a}", "1")])
    assert placed.env == {"SPRIG_CONFIG_1": "1", "SPRIG_CONFIG_2": "2"}
    assert placed.script == 'echo "${SPRIG_CONFIG_1}" "${SPRIG_CONFIG_2}" "${SPRIG_CONFIG_1}"'


def test_a_backslash_before_a_variable_stays_a_literal_backslash() -> None:
    for template in ("printf '%s' \\@", "printf '%s' \"\\@\"", "cat <<EOF\n\\@\nEOF"):
        placed = place(parts(template, "$(id)"))
        assert sh(placed).rstrip("\n") == "\\$(id)", (template, placed.script)
    assert sh(place(parts("printf '%s' '\\@'", "v"))) == "\\v"


def test_quoted_here_document_body_gets_the_text_only_when_it_cannot_end_the_body() -> None:
    placed = place(parts("cat <<'EOF'\n[@]\nEOF\necho after", "$(id) `id` ${HOME}"))
    assert sh(placed) == "[$(id) `id` ${HOME}]\nafter\n"
    with pytest.raises(PlacementError, match=r"\{configuration:/x\}.*newline"):
        place(parts("cat <<'EOF'\n@\nEOF", "a\nEOF\nid > FILE"))
    with pytest.raises(PlacementError, match=r"would end the here-document"):
        place(parts("cat <<'EOF'\n@\nEOF", "EOF"))
    with pytest.raises(PlacementError, match=r"would end the here-document"):
        place(parts("cat <<-'EOF'\n\t@\nEOF", "EOF"))
    # An unquoted body is expanded, so any value is fine there (even the delimiter).
    assert sh(place(parts("cat <<EOF\n@\nEOF", "EOF\nid"))) == "EOF\nid\n"


def test_several_here_documents_on_one_line() -> None:
    placed = place(["cat <<A; cat <<'B'\n", Value("{configuration:/a}", "$(one)"), "\nA\n",
                    Value("{configuration:/b}", "two"), "\nB\necho done"])
    assert placed.contexts == (Context.HEREDOC, Context.LITERAL_HEREDOC)
    assert sh(placed) == "$(one)\ntwo\ndone\n"


def test_arithmetic_takes_integers_only() -> None:
    assert sh(place(parts("echo $(( @ + 1 ))", "41"))) == "42\n"
    assert sh(place(parts("echo $(( @ + 1 ))", " -3 "))) == "-2\n"
    with pytest.raises(PlacementError, match=r"arithmetic.*'a\[\$\(id\)\]' is not an integer"):
        place(parts("echo $(( @ + 1 ))", "a[$(id)]"))


def test_refusals_name_the_variable() -> None:
    with pytest.raises(PlacementError, match=r"\{configuration:/d\} is used as a here-document"):
        place(parts("cat <<@\nx\nEOF", "EOF", "{configuration:/d}"))
    with pytest.raises(PlacementError, match=r"\{configuration:/x\}: the value holds a NUL"):
        place(parts("echo @", "a\0b"))


def test_an_unterminated_script_is_left_to_the_shell() -> None:
    placed = place(parts("echo 'unterminated @", "v"))
    assert placed.contexts == (Context.SINGLE_QUOTED,)
    assert place(parts('echo "$(x @', "v")).contexts == (Context.UNQUOTED,)


def _word(depth: int) -> st.SearchStrategy[str]:
    """Shell words mixing quotes, escapes, $( ), backquotes, ${ } and case, with @ marks."""
    base = st.sampled_from(["a", "@", "b@c", "\\'", '\\"', "\\\\", "#x", "${UNSET}"])
    if depth <= 0:
        return base
    spaced = st.lists(_word(depth - 1), min_size=1, max_size=3).map(" ".join)
    joined = st.lists(_word(depth - 1), min_size=1, max_size=3).map("".join)
    return st.one_of(
        base,
        st.lists(st.sampled_from(["a", "@", " ", '\\"', "${UNSET}", "'", "#"]), max_size=4)
        .map(lambda w: '"' + "".join(w) + '"'),
        st.lists(st.sampled_from(["a", "@", " ", '"', "\\", "#", "${x}"]), max_size=4)
        .map(lambda w: "'" + "".join(w) + "'"),
        spaced.map(lambda s: '"$(printf %s ' + s + ')"'),
        spaced.map(lambda s: "$(printf %s " + s + ")"),
        spaced.map(lambda s: '"`printf %s ' + s + '`"'),
        spaced.map(lambda s: "`printf %s \\`printf %s " + s.replace("`", "") + "\\``"),
        joined.map(lambda s: "${UNSET:-" + s + "}"),
        spaced.map(lambda s: "$(case x in x) printf %s " + s + ";; esac)"),
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(_word(2), min_size=1, max_size=4),
       st.sampled_from(["", " # c @", "\ncat <<EOF\n@ '@' \"@\"\nEOF", "\ncat <<'E'\nq@\nE"]))
def test_the_scanner_agrees_with_the_shell_on_every_context(words: list[str], tail: str) -> None:
    """For a plain value, the placed script must do what pasting the text does: if a context
    were misjudged, a reference would show up literally or the script would break."""
    template = "printf '[%s]' " + " ".join(words) + tail
    if "\\@" in template:              # a backslash before a variable is kept literal: differs
        return
    pasted = subprocess.run(["/bin/sh", "-c", template.replace("@", "VAL")],
                            capture_output=True, timeout=10)
    placed = place(parts(template, "VAL"))
    ours = subprocess.run(["/bin/sh", "-c", placed.script], capture_output=True, timeout=10,
                          env={**placed.env, "PATH": "/usr/bin:/bin"})
    assert (ours.returncode, ours.stdout) == (pasted.returncode, pasted.stdout), placed.script
