"""The line tokenizer: HAProxy 2.6's parse_line() rules used for SPOE files (comments,
quotes, backslash escapes, "$VAR" expansion, word limit), docs/explanation/agents.md §8."""

from __future__ import annotations

import pytest

from spoe_sync.config.lexer import MAX_LINE_ARGS, LexError, split_lines, tokenize

ENV = {"DD_SPOA_TIMEOUT": "5s", "EMPTY": "", "TWO": "a b"}


@pytest.mark.parametrize(("line", "words"), [
    pytest.param("  args ip=src dst", ["args", "ip=src", "dst"], id="blanks"),
    pytest.param("\targs\tip=src\t\t", ["args", "ip=src"], id="tabs"),
    pytest.param("max-frame-size 256 # comment", ["max-frame-size", "256"], id="comment"),
    pytest.param("messages m1#comment", ["messages", "m1"], id="comment-glued"),
    pytest.param("# whole line", [], id="comment-line"),
    pytest.param('args ua="req.fhdr(User-Agent)"', ["args", "ua=req.fhdr(User-Agent)"], id="dquote-mid-word"),
    pytest.param("args req.cook('oc_sessionPassphrase')", ["args", "req.cook(oc_sessionPassphrase)"], id="squote-mid-word"),
    pytest.param('args str("HAProxy session")', ["args", "str(HAProxy session)"], id="dquote-space"),
    pytest.param("args 'a # b'", ["args", "a # b"], id="hash-in-squote"),
    pytest.param("args '\"x\"'", ["args", '"x"'], id="dquote-in-squote"),
    pytest.param("args \"'x'\"", ["args", "'x'"], id="squote-in-dquote"),
    pytest.param("args 'a\\x41'", ["args", "a\\x41"], id="no-escape-in-squote"),
    pytest.param("args a\\ b", ["args", "a b"], id="escaped-space"),
    pytest.param("args a\\#b", ["args", "a#b"], id="escaped-hash"),
    pytest.param("args a\\\\b", ["args", "a\\b"], id="escaped-backslash"),
    pytest.param("args a\\x41b", ["args", "aAb"], id="hex"),
    pytest.param("args a\\tb\\nc\\r", ["args", "a\tb\nc\r"], id="control"),
    pytest.param("args a\\qb", ["args", "a\\qb"], id="unknown-escape-kept"),
    pytest.param('args "\\$X"', ["args", "$X"], id="escaped-dollar-in-dquote"),
    pytest.param("args \\$X", ["args", "\\$X"], id="backslash-dollar-outside"),
    pytest.param("args $DD_SPOA_TIMEOUT", ["args", "$DD_SPOA_TIMEOUT"], id="no-env-unquoted"),
    pytest.param("args '$DD_SPOA_TIMEOUT'", ["args", "$DD_SPOA_TIMEOUT"], id="no-env-squote"),
    pytest.param('timeout idle "$DD_SPOA_TIMEOUT"', ["timeout", "idle", "5s"], id="env"),
    pytest.param('timeout idle "${DD_SPOA_TIMEOUT}x"', ["timeout", "idle", "5sx"], id="env-braces"),
    pytest.param('a "${UNSET_VAR-1s}"', ["a", "1s"], id="env-default"),
    pytest.param('a "${DD_SPOA_TIMEOUT-1s}"', ["a", "5s"], id="env-default-unused"),
    pytest.param('a "$UNSET_VAR" b', ["a", "", "b"], id="env-unset-empty-word"),
    pytest.param('a "$TWO"', ["a", "a b"], id="env-one-word"),
    pytest.param('a "${TWO[*]}" c', ["a", "a", "b", "c"], id="env-word-expansion"),
    pytest.param('a "x${TWO[*]}y"', ["a", "xa", "by"], id="env-word-expansion-glued"),
    pytest.param('a "${UNSET_VAR[*]}"', ["a", ""], id="env-word-expansion-unset"),
    pytest.param('a "" b', ["a", "", "b"], id="empty-word"),
    pytest.param("a\rb", ["a", "b"], id="cr-is-blank"),
])
def test_tokenize(line, words):
    assert tokenize(line, ENV) == words


@pytest.mark.parametrize(("line", "message", "column"), [
    pytest.param('args x="src', "unmatched quote", 8, id="dquote"),
    pytest.param("args x='src", "unmatched quote", 8, id="squote"),
    pytest.param("args str(\\xZZ)", "truncated or invalid hexadecimal sequence", 10, id="hex"),
    pytest.param("args \\x4", "truncated or invalid hexadecimal sequence", 6, id="hex-short"),
    pytest.param('a "${NAME"', "unmatched brace in environment variable name", 5, id="brace"),
    pytest.param('a "$(x)"', "forbidden first char in environment variable name", 5, id="first-char"),
    pytest.param('a "$1"', "forbidden first char in environment variable name", 5, id="digit"),
    pytest.param("args src\0 foo", "Stray NUL character", 9, id="nul"),
])
def test_tokenize_errors(line, message, column):
    with pytest.raises(LexError) as info:
        tokenize(line, ENV)
    assert info.value.message == message
    assert info.value.column == column


def test_word_limit():
    assert len(tokenize(" ".join(["w"] * MAX_LINE_ARGS), ENV)) == MAX_LINE_ARGS
    with pytest.raises(LexError, match="too many words, truncating after word 64"):
        tokenize(" ".join(["w"] * (MAX_LINE_ARGS + 1)), ENV)


def test_os_environ_is_the_default(monkeypatch):
    monkeypatch.setenv("SPOE_SYNC_LEXER_TEST", "from-env")
    assert tokenize('x "$SPOE_SYNC_LEXER_TEST"') == ["x", "from-env"]


def test_split_lines_numbers_every_line_and_keeps_no_continuation():
    lines = list(split_lines("a\n\nb \\\nc"))
    assert [(x.lineno, x.raw) for x in lines] == [(1, "a"), (2, ""), (3, "b \\"), (4, "c")]
