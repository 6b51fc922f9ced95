"""After the file is read: HAProxy 2.6's end-of-file checks of ``parse_spoe_flt()``.

In HAProxy's order: an agent must exist and name a backend; missing timeouts and an
agent without messages/groups are warnings; the agent name must be a valid variable
prefix unless ``option var-prefix`` is set; then every ``messages``/``groups`` name is
resolved (undefined = error, message without event = warning and dropped, an arg not
available at the message's event = error, a message in two used groups = error).

HAProxy stops at the first of these errors; spoe_sync reports them all. On top of
HAProxy, an expression spoe_sync cannot evaluate (a fetch HAProxy has but spoe_sync
does not implement) is an error where it would run, and a warning elsewhere.
"""

from __future__ import annotations

from .drafts import AgentDraft, MessageDraft, Problems, ScopeDraft
from .model import AgentConfig, ArgConfig, GroupConfig, MessageConfig, SpoeConfig, Timeouts
from .syntax import invalid_var_char

__all__ = ["PROXY_KINDS", "build_config"]

PROXY_KINDS = ("frontend", "backend", "listen")
_FRONTEND_EVENTS = ("on-client-session", "on-frontend-tcp-request", "on-frontend-http-request")
_TO_FRONTEND = {"on-backend-tcp-request": "on-frontend-tcp-request",
                "on-backend-http-request": "on-frontend-http-request"}


def build_config(scope: ScopeDraft, problems: Problems, *, engine: str | None,
                 proxy: str = "frontend") -> SpoeConfig | None:
    """Check the sections read and build the frozen :class:`SpoeConfig`.

    Returns ``None`` when an error was found (all of them are in ``problems``).
    """
    agent = scope.agent
    where = problems.where
    if agent is None:
        hint = ""
        seen = problems.scopes_seen
        if engine is None and seen:
            hint = f" (the file has scopes {', '.join(f'[{s}]' for s in seen)}: name one as the engine)"
        elif engine is not None and engine not in seen:
            hint = (f" (no scope [{engine}] in the file" +
                    (f"; it has {', '.join(f'[{s}]' for s in seen)})" if seen else ")"))
        problems.error(f"No SPOE agent found in file {problems.filename}{hint}", None)
        return None
    if agent.use_backend is None:
        problems.error(f"No backend declared for SPOE agent '{agent.name}' declared at "
                       f"{where(agent.lineno)}", agent.lineno)
    if any(not agent.timeouts.get(t) for t in ("hello", "idle", "processing")):
        problems.warn(f"missing timeouts for SPOE agent '{agent.name}' declare at "
                      f"{where(agent.lineno)}. While not properly invalid, you will certainly "
                      "encounter various problems with such a configuration. To fix this, "
                      "please ensure that all following timeouts are set to a non-zero value: "
                      "'hello', 'idle', 'processing'.", agent.lineno)
    var_prefix = agent.var_prefix
    if var_prefix is None:
        if invalid_var_char(agent.name) is not None:
            problems.error(f"Invalid variable prefix '{agent.name}' for SPOE agent "
                           f"'{agent.name}' declared at {where(agent.lineno)}. Use 'option "
                           "var-prefix' to set it. Only [a-zA-Z0-9_.] chars are supported.",
                           agent.lineno)
        var_prefix = agent.name

    events: dict[str, list[MessageDraft]] = {}
    groups: dict[str, GroupConfig] = {}
    group_of: dict[str, str] = {}
    running: set[str] = set()
    if not agent.messages and not agent.groups:
        problems.warn(f"No message/group used by SPOE agent '{agent.name}' declared at "
                      f"{where(agent.lineno)}.", agent.lineno)
    else:
        _resolve_messages(agent, scope, problems, proxy, events, running)
        _resolve_groups(agent, scope, problems, groups, group_of, running)
    for name, lineno in agent.register_var_names:
        bad = invalid_var_char(name)
        if bad is not None:
            problems.error(f"SPOE agent '{agent.name}': failed to register variable "
                           f"{var_prefix}.{name} (invalid syntax at char '{name[bad:]}')", lineno)
    _check_implemented(scope, problems, running)
    if problems.errors:
        return None

    messages = {name: _freeze_message(m, problems.filename, group_of.get(name))
                for name, m in scope.messages.items()}
    frozen_events = {ev: tuple(messages[m.name] for m in msgs) for ev, msgs in events.items()}
    return SpoeConfig(
        engine_id=engine if engine is not None else agent.name,
        scope=engine,
        agent=_freeze_agent(agent, var_prefix, problems.filename),
        messages=messages,
        groups=groups,
        events=frozen_events,
        filename=problems.filename,
    )


def _resolve_messages(agent: AgentDraft, scope: ScopeDraft, problems: Problems, proxy: str,
                      events: dict[str, list[MessageDraft]], running: set[str]) -> None:
    where = problems.where
    for name, lineno in agent.messages:
        msg = scope.messages.get(name)
        if msg is None:
            problems.error(f"SPOE agent '{agent.name}' try to use undefined SPOE message "
                           f"'{name}' at {where(agent.lineno)}", lineno)
            continue
        event = msg.event
        if proxy == "listen" and event in _TO_FRONTEND:
            event = _TO_FRONTEND[event]
        if proxy == "backend" and event in _FRONTEND_EVENTS:
            problems.warn(f"frontend event used on a backend proxy at {where(msg.lineno)}.",
                          msg.event_lineno or msg.lineno)
            continue
        if event is None:
            problems.warn(f"Ignore SPOE message '{name}' without event at {where(msg.lineno)}.",
                          msg.lineno)
            continue
        ok = True
        for arg in msg.args:
            why = arg.expr.unavailable_at(event, proxy=proxy)
            if why is not None:
                problems.error(f"Ignore SPOE message '{name}' at {where(msg.lineno)}: {why}",
                               arg.lineno)
                ok = False
                break
        if ok:
            running.add(name)
            events.setdefault(event, []).append(msg)
            msg.event = event


def _resolve_groups(agent: AgentDraft, scope: ScopeDraft, problems: Problems,
                    groups: dict[str, GroupConfig], group_of: dict[str, str],
                    running: set[str]) -> None:
    where = problems.where
    for name, lineno in agent.groups:
        grp = scope.groups.get(name)
        if grp is None:
            problems.error(f"SPOE agent '{agent.name}' try to use undefined SPOE group "
                           f"'{name}' at {where(agent.lineno)}", lineno)
            continue
        members = []
        for msg_name, msg_lineno in grp.messages:
            if msg_name not in scope.messages:
                problems.error(f"SPOE group '{name}' try to use undefined SPOE message "
                               f"'{msg_name}' at {where(agent.lineno)}", msg_lineno)
                continue
            owner = group_of.get(msg_name)
            if owner is not None:
                problems.error(f"SPOE message '{msg_name}' already belongs to the SPOE group "
                               f"'{owner}' declare at {where(scope.groups[owner].lineno)}",
                               msg_lineno)
                continue
            group_of[msg_name] = name
            running.add(msg_name)
            members.append(msg_name)
        groups[name] = GroupConfig(name, tuple(members), problems.filename, grp.lineno)


def _check_implemented(scope: ScopeDraft, problems: Problems, running: set[str]) -> None:
    for name, msg in scope.messages.items():
        runs = name in running
        for arg in msg.args:
            if not getattr(arg.expr, "implemented", True):
                _not_implemented(problems, runs, name, f"fetch '{arg.expr.fetch}'", arg.lineno)
        cond = msg.condition
        if cond is not None and not getattr(cond, "implemented", True):
            _not_implemented(problems, runs, name, "its event condition",
                             msg.condition_lineno or msg.lineno)


def _not_implemented(problems: Problems, runs: bool, msg: str, what: str, lineno: int) -> None:
    if runs:
        problems.error(f"SPOE message '{msg}' uses {what}, which HAProxy knows but spoe_sync "
                       "does not implement.", lineno)
    else:
        problems.warn(f"SPOE message '{msg}' uses {what}, which spoe_sync does not implement; "
                      "the message is never sent, so this is not an error.", lineno)


def _freeze_message(msg: MessageDraft, filename: str, group: str | None) -> MessageConfig:
    return MessageConfig(
        name=msg.name,
        args=tuple(ArgConfig(a.name, a.expr) for a in msg.args),
        event=msg.event,
        condition=msg.condition,
        filename=filename,
        lineno=msg.lineno,
        group=group,
        event_lineno=msg.event_lineno,
    )


def _seconds(ms: int | None) -> float | None:
    return ms / 1000.0 if ms else None


def _freeze_agent(agent: AgentDraft, var_prefix: str, filename: str) -> AgentConfig:
    t = agent.timeouts
    return AgentConfig(
        name=agent.name,
        var_prefix=var_prefix,
        use_backend=agent.use_backend or "",
        messages=tuple(n for n, _ in agent.messages),
        groups=tuple(n for n, _ in agent.groups),
        timeouts=Timeouts(_seconds(t.get("hello")), _seconds(t.get("idle")),
                          _seconds(t.get("processing"))),
        max_frame_size=agent.max_frame_size,
        max_waiting_frames=agent.max_waiting_frames,
        maxconnrate=agent.maxconnrate,
        maxerrrate=agent.maxerrrate,
        pipelining=agent.flags["pipelining"],
        async_=agent.flags["async"],
        send_frag_payload=agent.flags["send-frag-payload"],
        dontlog_normal=agent.flags["dontlog-normal"],
        continue_on_error=agent.flags["continue-on-error"],
        force_set_var=agent.flags["force-set-var"],
        set_on_error=agent.set_on_error,
        set_process_time=agent.set_process_time,
        set_total_time=agent.set_total_time,
        register_var_names=tuple(f"proc.{var_prefix}.{n}" for n, _ in agent.register_var_names),
        logs=tuple(agent.logs),
        log_global=agent.log_global,
        filename=filename,
        lineno=agent.lineno,
    )
