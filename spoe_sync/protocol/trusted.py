"""One trusted fast constructor per hot-path value object (h11's ``_parsed=True`` idea).

The frames, events and results built once per request are frozen dataclasses.
Their generated ``__init__`` pays an ``object.__setattr__`` call per field (the
frozen ``__setattr__`` refuses plain assignment), and a ``__post_init__`` may
re-check what the caller already knows: about a third of the cost of decoding
an ACK, a tenth of a processing's CPU.  h11 answers the same cost with a
``_parsed=True`` flag on the event's own constructor: code that has already
validated its input says so and the checks are skipped.

:func:`trusted_constructor` gives a class that path as ``cls._trusted(...)``:
same parameters and defaults as the class (positional), every field stored
straight into its slot (or into the instance ``__dict__``, item by item, for a class
without slots), no ``__post_init__``.  The caller promises that the values are
what ``__init__`` and ``__post_init__`` would have made of them.  Only code of
this package calls it; the public way to build the objects is their class.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["trusted_constructor"]

_T = TypeVar("_T")


def trusted_constructor(cls: type[_T]) -> type[_T]:
    """Class decorator (outside ``@dataclass``): add ``cls._trusted(*fields)``.

    The code is generated once, unrolled field by field as ``dataclasses`` does
    for ``__init__``: a loop over the fields would cost back what is saved.
    """
    fields = [f for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    names = [f.name for f in fields]
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_MISSING": dataclasses.MISSING}
    params = []
    body = []
    for f in fields:
        if f.default is not dataclasses.MISSING:
            namespace[f"_d_{f.name}"] = f.default
            params.append(f"{f.name}=_d_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            # A factory default is made per call, as __init__ does.
            namespace[f"_f_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_MISSING")
            body.append(f"    if {f.name} is _MISSING: {f.name} = _f_{f.name}()")
        else:
            params.append(f.name)
    lines = [f"def _trusted({', '.join(params)}):", *body]
    if "__slots__" in cls.__dict__:
        # The frozen ``__setattr__`` refuses plain stores, and a slot's own
        # setter (``descriptor.__set__``) is a C wrapper call per field, ten
        # times a plain store.  So the fields go into an instance of a twin
        # class (the same bases and slots, so the same memory layout, and no
        # frozen ``__setattr__``) by plain stores, then the instance becomes a
        # ``cls`` by ``__class__`` assignment, which CPython allows between
        # classes of one layout: half the cost of an ACK's two objects.
        meta: Any = type(cls)
        twin = namespace["_twin"] = meta(cls.__name__, cls.__bases__,
                                         {"__slots__": cls.__dict__["__slots__"],
                                          "__module__": cls.__module__})
        object.__new__(twin).__class__ = cls  # a layout CPython would refuse fails here, now
        lines.append("    self = _new(_twin)")
        for name in names:
            lines.append(f"    self.{name} = {name}")
        lines.append("    self.__class__ = _cls")
    else:
        lines.append("    self = _new(_cls)")
        # Item by item into the instance's own dict (key-sharing): cheaper to
        # fill than a new dict is to install.
        lines.append("    fields = self.__dict__")
        for name in names:
            lines.append(f"    fields[{name!r}] = {name}")
    lines.append("    return self")
    exec("\n".join(lines), namespace)  # our own field names only: no outside text
    build: Callable[..., _T] = namespace["_trusted"]
    build.__qualname__ = f"{cls.__qualname__}._trusted"
    build.__doc__ = (f"``{cls.__name__}(...)`` for values already as the class would make "
                     "them: no checks, no ``__post_init__``.")
    cls._trusted = staticmethod(build)  # type: ignore[attr-defined]
    return cls
