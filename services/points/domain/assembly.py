"""Fast positional constructors for the frozen, slotted dataclasses a purchase builds.

A frozen dataclass's `__init__` sets every field through `object.__setattr__` (a frozen
class refuses plain assignment), which looks the attribute up on the type each time: a
9-field `LedgerLine` costs ~1 µs, and every purchase builds five such objects. The
constructor made here sets each slot through its own descriptor, bound once, and costs
about half. It is generated from the class's own fields, so it cannot drift from them.

Only for values the caller has already checked: it runs no `__post_init__`, and every
field is given, in field order. Every other construction goes through the class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, is_dataclass
from typing import Any, TypeVar

T = TypeVar("T")


def assembler(cls: type[T]) -> Callable[..., T]:
    """`cls(*values)` for a slotted dataclass, every field given in order, no checks.

    Built like `dataclasses` builds `__init__`: the source of one function, whose body
    sets slot after slot (`make(a, b)` runs `set_a(obj, a); set_b(obj, b)`).
    """
    if not is_dataclass(cls) or "__slots__" not in vars(cls):
        raise TypeError(f"{cls.__name__} is not a slotted dataclass")
    names = [field.name for field in fields(cls)]
    setters: dict[str, Any] = {f"set_{name}": vars(cls)[name].__set__ for name in names}
    body = "".join(f"    set_{name}(obj, {name})\n" for name in names)
    source = f"def make({', '.join(names)}):\n    obj = new(cls)\n{body}    return obj\n"
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls, **setters}
    exec(source, namespace)  # noqa: S102 - source built above from the class's field names
    make: Callable[..., T] = namespace["make"]
    make.__qualname__ = make.__name__ = f"assemble_{cls.__name__}"
    return make
