"""``spoe-message`` and ``spoe-group`` section keywords (SPOE.txt §2.3, §2.4).

Sample expressions and conditions are compiled here, through the rules layer, so a
typo in a fetch name fails when the file is loaded, with HAProxy's wording.
"""

from __future__ import annotations

from ..errors import ExpressionError
from ..rules import AclRegistry, parse_condition, parse_sample
from .drafts import ArgDraft, GroupDraft, MessageDraft, ReaderState
from .model import EVENTS
from .syntax import invalid_char

__all__ = ["parse_group_line", "parse_message_line"]


def _header(kind: str, args: list[str], lineno: int, st: ReaderState) -> str:
    if not args[1]:
        st.abort(f"missing name for {kind} section.", lineno)
    if args[2]:
        st.abort(f"'{kind}' cannot handle unexpected argument '{args[2]}'.", lineno)
    bad = invalid_char(args[1])
    if bad is not None:
        st.abort(f"character '{bad}' is not permitted in '{kind}' name '{args[1]}'.", lineno)
    return args[1]


def parse_message_line(args: list[str], kwm: int, lineno: int, st: ReaderState) -> None:
    """Handle one line of a ``spoe-message`` section (``args`` padded with ``""``)."""
    kw = args[0]
    if kw == "spoe-message":
        name = _header("spoe-message", args, lineno, st)
        other = st.scope.messages.get(name)
        if other is not None:
            # HAProxy keeps filling the previous message after this error
            st.error(f"spoe-message section '{name}' has the same name as another one "
                     f"declared at {st.problems.where(other.lineno)}.", lineno)
            return
        st.message = st.scope.messages[name] = MessageDraft(name, lineno)
        return
    msg = st.message
    if msg is None:
        msg = MessageDraft("", lineno)  # see parse_agent_line
    if kw == "args":
        _args(msg, args, lineno, st)
    elif kw == "acl":
        _acl(msg, args, lineno, st)
    elif kw == "event":
        _event(msg, args, lineno, st)
    else:
        # HAProxy 2.6 silently ignores any other keyword here (an inverted test in
        # cfg_parse_spoe_message()); the file stays valid, but a typo such as
        # "evnet" would go unnoticed, so say it.
        st.problems.warn(f"unknown keyword '{kw}' in spoe-message section is ignored "
                         "(as HAProxy 2.6 does).", lineno)


def _args(msg: MessageDraft, args: list[str], lineno: int, st: ReaderState) -> None:
    i = 1
    while args[i]:
        name, eq, text = args[i].partition("=")
        if not eq:
            name, text = "", args[i]
        try:
            expr = parse_sample(text, base_dir=st.base_dir)
        except ExpressionError as exc:
            st.error(f"'args': {_dot(exc.message)}", lineno)
            return
        msg.args.append(ArgDraft(name, expr, lineno))
        i += 1


def _acl(msg: MessageDraft, args: list[str], lineno: int, st: ReaderState) -> None:
    name = args[1]
    bad = invalid_char(name)
    if bad is not None:
        shown = "\\0" if bad == "\0" else bad
        st.error(f"character '{shown}' is not permitted in acl name '{name}'.", lineno)
        return
    if name.lower() == "or":
        st.error(f"acl name '{name}' will never match. 'or' is used to express a logical "
                 "disjunction within a condition.", lineno)
        return
    words = _words(args, 2)
    try:
        _acls(msg).add(name, words, base_dir=st.base_dir, filename=st.problems.filename,
                     lineno=lineno)
    except ExpressionError as exc:
        st.error(f"error detected while parsing ACL '{name}' : {_dot(exc.message)}", lineno)
        return
    msg.acl_lines.append((name, lineno))


def _event(msg: MessageDraft, args: list[str], lineno: int, st: ReaderState) -> None:
    event = args[1]
    if not event:
        st.error("missing event name.", lineno)
        return
    if event not in EVENTS:
        st.error(f"unknown event '{event}'.", lineno)
        return
    msg.event = event
    msg.event_lineno = lineno
    if args[2] in ("if", "unless"):
        words = _words(args, 2)
        if len(words) == 1:
            # HAProxy builds a condition without any term: 'if' never matches,
            # 'unless' always does. Say it, it is surely not what was meant.
            st.problems.warn(f"'event {event} {words[0]}' has an empty condition: the message "
                             f"is {'never' if words[0] == 'if' else 'always'} sent.", lineno)
            words = [words[0], "FALSE"]
        try:
            cond = parse_condition(words, _acls(msg), base_dir=st.base_dir)
        except ExpressionError as exc:
            st.error(f"error detected while parsing an 'event {event}' condition : "
                     f"{_dot(exc.message)}", lineno)
            return
        msg.condition = cond
        msg.condition_lineno = lineno
    elif args[2]:
        st.error(f"'event {event}' expects either 'if' or 'unless' followed by a condition "
                 f"but found '{args[2]}'.", lineno)
    # An 'event' line without a condition keeps the previous line's condition, as in
    # HAProxy (only 'if'/'unless' replaces msg->cond).


def _dot(message: str) -> str:
    """HAProxy ends these lines with a period; some messages already have one."""
    return message if message.endswith(".") else message + "."


def _acls(msg: MessageDraft) -> AclRegistry:
    """The message-local ACLs, made on first use.

    Not :func:`~spoe_sync.config.haproxy_cfg.build_acl_registry`, which builds a registry from
    all its lines at once: here each ``acl`` line is added as it is read, so that an ``event``
    condition sees only the ACLs declared above it (as in HAProxy), and a bad line is reported
    with HAProxy's SPOE wording through the reader's problems.  Both go through
    :meth:`AclRegistry.add`, the one place an ACL is parsed."""
    registry: AclRegistry = msg.acls if msg.acls is not None else AclRegistry()
    msg.acls = registry
    return registry


def _words(args: list[str], start: int) -> list[str]:
    out = []
    i = start
    while i < len(args) and args[i]:
        out.append(args[i])
        i += 1
    return out


def parse_group_line(args: list[str], kwm: int, lineno: int, st: ReaderState) -> None:
    """Handle one line of a ``spoe-group`` section (``args`` padded with ``""``)."""
    kw = args[0]
    if kw == "spoe-group":
        name = _header("spoe-group", args, lineno, st)
        other = st.scope.groups.get(name)
        if other is not None:
            st.error(f"spoe-group section '{name}' has the same name as another one "
                     f"declared at {st.problems.where(other.lineno)}.", lineno)
            return
        st.group = st.scope.groups[name] = GroupDraft(name, lineno)
        return
    grp = st.group if st.group is not None else GroupDraft("", lineno)
    if kw == "messages":
        i = 1
        while args[i]:
            if any(name == args[i] for name, _ in grp.messages):
                st.error(f"spoe-message '{args[i]}' already used.", lineno)
                return
            grp.messages.append((args[i], lineno))
            i += 1
        return
    st.error(f"unknown keyword '{kw}' in spoe-group section.", lineno)
