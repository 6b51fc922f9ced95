"""``spoe-agent`` section keywords (SPOE.txt §2.2), as HAProxy 2.6's ``cfg_parse_spoe_agent()``.

Every message is HAProxy's own text, so a user can search for it; the checks happen
in HAProxy's order, and a problem stops the rest of its line the way HAProxy does.
"""

from __future__ import annotations

from .drafts import AgentDraft, ReaderState
from .logsrv import LogError, RingError, parse_log_target
from .syntax import atol_u32, invalid_char, invalid_var_char, parse_time_ms

__all__ = ["KWM_DEF", "KWM_NO", "KWM_STD", "parse_agent_line", "too_many_args"]

KWM_STD, KWM_NO, KWM_DEF = 0, 1, 2
_TOGGLES = ("pipelining", "async", "send-frag-payload", "dontlog-normal")
_VAR_OPTIONS = {"var-prefix": "var_prefix", "set-on-error": "set_on_error",
                "set-process-time": "set_process_time", "set-total-time": "set_total_time"}


def too_many_args(maxarg: int, args: list[str], st: ReaderState, lineno: int) -> bool:
    """HAProxy's ``alertif_too_many_args()``: an error if ``args[maxarg + 1]`` is set."""
    if args[maxarg + 1]:
        st.error(f"'{args[0]}' cannot handle unexpected argument '{args[maxarg + 1]}'.", lineno)
        return True
    return False


def parse_agent_line(args: list[str], kwm: int, lineno: int, st: ReaderState) -> None:
    """Handle one line of a ``spoe-agent`` section (``args`` padded with ``""``)."""
    kw = args[0]
    if kw == "spoe-agent":
        _new_agent(args, lineno, st)
        return
    agent = st.agent
    if agent is None:
        # a keyword line carried into this scope from a section header of another
        # scope: HAProxy would dereference NULL here; read it into a throwaway agent
        agent = AgentDraft("", lineno)
    handler = _KEYWORDS.get(kw)
    if handler is None:
        st.error(f"unknown keyword '{kw}' in spoe-agent section.", lineno)
        return
    handler(agent, args, kwm, lineno, st)


def _new_agent(args: list[str], lineno: int, st: ReaderState) -> None:
    if not args[1]:
        st.abort("missing name for spoe-agent section.", lineno)
    if args[2]:
        st.abort(f"'spoe-agent' cannot handle unexpected argument '{args[2]}'.", lineno)
    bad = invalid_char(args[1])
    if bad is not None:
        st.abort(f"character '{bad}' is not permitted in 'spoe-agent' name '{args[1]}'.", lineno)
    if st.scope.agent is not None:
        st.abort("another spoe-agent section previously defined.", lineno)
    st.agent = st.scope.agent = AgentDraft(args[1], lineno, max_frame_size=st.bufsize - 4)


def _use_backend(agent: AgentDraft, args: list[str], kwm: int, lineno: int, st: ReaderState) -> None:
    if not args[1]:
        st.error("'use-backend' expects a backend name.", lineno)
        return
    if too_many_args(1, args, st, lineno):
        return
    agent.use_backend = args[1]


def _placeholders(kind: str, target: list[tuple[str, int]], args: list[str], lineno: int,
                  st: ReaderState) -> None:
    i = 1
    while args[i]:
        if any(name == args[i] for name, _ in target):
            st.error(f"{kind} '{args[i]}' already used.", lineno)
            return
        target.append((args[i], lineno))
        i += 1


def _messages(agent: AgentDraft, args: list[str], kwm: int, lineno: int, st: ReaderState) -> None:
    _placeholders("spoe-message", agent.messages, args, lineno, st)


def _groups(agent: AgentDraft, args: list[str], kwm: int, lineno: int, st: ReaderState) -> None:
    _placeholders("spoe-group", agent.groups, args, lineno, st)


def _timeout(agent: AgentDraft, args: list[str], kwm: int, lineno: int, st: ReaderState) -> None:
    if not args[1]:
        st.error("'timeout' expects 'hello', 'idle' and 'processing'.", lineno)
        return
    if too_many_args(2, args, st, lineno):
        return
    if args[1] not in ("hello", "idle", "processing"):
        st.error(f"'timeout' supports 'hello', 'idle' or 'processing' (got {args[1]}).", lineno)
        return
    if not args[2]:
        st.error(f"'timeout {args[1]}' expects an integer value (in milliseconds).", lineno)
        return
    parsed = parse_time_ms(args[2], f"timeout {args[1]}")
    if parsed.error is not None:
        st.error(parsed.error + ("" if parsed.error.endswith(".") else "."), lineno)
        return
    if parsed.warning is not None:
        st.problems.warn(parsed.warning, lineno)
    agent.timeouts[args[1]] = parsed.ms or 0


def _option(agent: AgentDraft, args: list[str], kwm: int, lineno: int, st: ReaderState) -> None:
    name = args[1]
    if not name:
        st.error("'option' expects an option name.", lineno)
        return
    if name in _TOGGLES:
        if not too_many_args(1, args, st, lineno):
            agent.flags[name] = kwm != KWM_NO
        return
    if kwm == KWM_NO:
        st.error(f"negation is not supported for option '{name}'.", lineno)
        return
    if name in _VAR_OPTIONS:
        if not args[2]:
            st.error(f"'option {name}' expects a value.", lineno)
            return
        if too_many_args(2, args, st, lineno):
            return
        if invalid_var_char(args[2]) is not None:
            st.error(f"'option {name}' only supports [a-zA-Z0-9_.] chars.", lineno)
            return
        setattr(agent, _VAR_OPTIONS[name], args[2])
        return
    if name in ("force-set-var", "continue-on-error"):
        if not too_many_args(1, args, st, lineno):
            agent.flags[name] = True
        return
    st.error(f"option '{name}' is not supported.", lineno)


def _integer(agent: AgentDraft, args: list[str], kwm: int, lineno: int, st: ReaderState) -> None:
    kw = args[0]
    if not args[1]:
        st.error(f"'{kw}' expects an integer argument.", lineno)
        return
    if too_many_args(1, args, st, lineno):
        return
    value = atol_u32(args[1])
    if kw == "max-frame-size":
        if not 256 <= value <= st.bufsize - 4:
            st.error("'max-frame-size' expects a positive integer argument in the range "
                     f"[256, {st.bufsize - 4}].", lineno)
            return
        agent.max_frame_size = value
    elif kw == "max-waiting-frames":
        if value < 1:
            st.error("'max-waiting-frames' expects a positive integer argument.", lineno)
            return
        agent.max_waiting_frames = value
    elif kw == "maxconnrate":
        agent.maxconnrate = value
    else:
        agent.maxerrrate = value


def _register_var_names(agent: AgentDraft, args: list[str], kwm: int, lineno: int,
                        st: ReaderState) -> None:
    if not args[1]:
        st.error("'register-var-names' expects one or more variable names.", lineno)
        return
    i = 1
    while args[i]:
        agent.register_var_names.append((args[i], lineno))
        i += 1


def _log(agent: AgentDraft, args: list[str], kwm: int, lineno: int, st: ReaderState) -> None:
    if kwm == KWM_NO:
        if args[1]:
            st.error("log : 'no log' does not expect arguments", lineno)
            return
        agent.logs.clear()
        agent.log_global = False
        return
    if args[1] == "global" and not args[2]:
        agent.log_global = True
        return
    words = []
    i = 1
    while args[i]:
        words.append(args[i])
        i += 1
    try:
        agent.logs.append(parse_log_target(words))
    except RingError as exc:
        st.error(f"log server used by SPOE agent '{agent.name}' declared at "
                 f"{st.problems.where(agent.lineno)} uses unknown ring named '{exc.ring}'.",
                 lineno)
    except LogError as exc:
        st.error(f"log : {exc}", lineno)


_KEYWORDS = {
    "use-backend": _use_backend,
    "messages": _messages,
    "groups": _groups,
    "timeout": _timeout,
    "option": _option,
    "maxconnrate": _integer,
    "maxerrrate": _integer,
    "max-frame-size": _integer,
    "max-waiting-frames": _integer,
    "register-var-names": _register_var_names,
    "log": _log,
}
