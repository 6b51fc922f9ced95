"""HAProxy's PCRE patterns on Python's ``re`` (rules/pcre.py): what has an exact
equivalent is translated, what Python would read as something else is refused.  The
same constructs go through HAProxy 2.6 in tests/conformance/test_rules_acl_haproxy.py."""

from __future__ import annotations

import re

import pytest

from spoe_sync.config import parse_rules
from spoe_sync.errors import ConfigError, ExpressionError
from spoe_sync.rules import AclRegistry, EvalContext, StaticSamples, parse_condition
from spoe_sync.rules.pcre import compile_pcre


@pytest.mark.parametrize("pattern, matches, misses", [
    pytest.param("[[:digit:]]+", ["123"], ["g]", "abc"], id="posix-digit"),
    pytest.param("^[[:alpha:][:digit:]_]+$", ["ab_9"], ["a-b"], id="posix-two-classes"),
    pytest.param("^[[:space:]]$", [" ", "\t"], ["x"], id="posix-space"),
    pytest.param("^[[:punct:]]+$", ["!-/@[`{~"], ["a"], id="posix-punct"),
    pytest.param("^[^[:upper:]]+$", ["abc"], ["aBc"], id="posix-negated-set"),
    pytest.param("^(?<word>[a-z]+)-(?P=word)$", ["ab-ab"], ["ab-cd"], id="named-group"),
    pytest.param("(?<=a)b", ["ab"], ["cb"], id="lookbehind-kept"),
    pytest.param(r"^\Qa.b*\E$", ["a.b*"], ["axbb"], id="quoted"),
    pytest.param("^[]a]+$", ["]a]"], ["b"], id="bracket-first"),
    pytest.param("^[[a]+$", ["[a["], ["b"], id="literal-bracket-in-class"),
    pytest.param("^[a&&b]+$", ["a&b"], ["c"], id="ampersands-literal"),
    pytest.param("^b{,3}$", ["b{,3}"], ["b", "bb"], id="brace-comma-literal"),
    pytest.param(r"a\z", ["xa"], ["a\n"], id="z-lower-very-end"),
    pytest.param(r"a\Z", ["xa", "a\n"], ["a\n\n"], id="z-upper-before-final-newline"),
    pytest.param(r"^\h+$", [" \t"], ["\n"], id="horizontal-space"),
    pytest.param(r"^[\v]+$", ["\r\n"], [" "], id="vertical-space-in-class"),
    pytest.param(r"^(?<q>['\"]).*\k<q>$", ["'a'"], ["'a\""], id="named-backref"),
    pytest.param(r"^\w+$", ["abc_1"], ["caf\xe9"], id="ascii-word"),
    pytest.param(r"^\d$", ["7"], ["\u0663"], id="ascii-digit"),
])
def test_translated_patterns_match_as_pcre_does(pattern, matches, misses):
    rx = compile_pcre(pattern)
    for text in matches:
        assert rx.search(text), text
    for text in misses:
        assert not rx.search(text), text
    assert compile_pcre(pattern.encode()).search(matches[0].encode())  # bytes too


@pytest.mark.parametrize("pattern", [
    pytest.param("foo(?i)bar", id="inline-flag-late"),
    pytest.param("[[:^digit:]]", id="negated-posix"),
    pytest.param("(a", id="unbalanced"),
    pytest.param("[[:foo:]]", id="unknown-posix-class"),
    pytest.param("[[:ALPHA:]]", id="uppercase-posix-class"),
    pytest.param("[[.a.]]", id="collating-element"),
    pytest.param("[:alpha:]", id="posix-class-outside-brackets"),
])
def test_patterns_without_an_equivalent_are_refused(pattern):
    with pytest.raises(re.error):
        compile_pcre(pattern)


def test_config_lines_use_it():
    cond = parse_condition(["if", "{", "path", "-m", "reg", "^/[[:digit:]]+$", "}"],
                           AclRegistry())
    assert cond.evaluate(EvalContext(StaticSamples({"path": "/123"})))
    assert not cond.evaluate(EvalContext(StaticSamples({"path": "/g]"})))
    with pytest.raises(ExpressionError, match="invalid"):
        parse_condition(["if", "{", "path", "-m", "reg", "foo(?i)bar", "}"], AclRegistry())
    rule = parse_rules(["http-request replace-header x ^([[:digit:]]+)$ n\\1"],
                       "http-request")[0]
    assert rule.action.regex.pattern == "^([0-9]+)$"
    with pytest.raises(ConfigError, match="regex"):
        parse_rules(["http-request del-header foo(?i)bar -m reg"], "http-request")
