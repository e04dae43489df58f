"""Immutable value records for events and messages.

What `@dataclass(frozen=True, slots=True)` gives (slots, keyword or positional construction,
equality by type and fields, hashing, repr, `match` patterns, assignment refused), without its
import-time cost: dataclasses generates code with exec() for every class, which made importing
the protocol's ~30 records a sixth of `termshare share`'s start-up. Type checkers see a dataclass
(PEP 681).
"""

from __future__ import annotations

from typing import Any, dataclass_transform


@dataclass_transform(frozen_default=True, eq_default=True)
class _ValueType(type):
    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> _ValueType:
        fields = tuple(namespace.get("__annotations__", ()))  # names only: annotations stay strings
        namespace["__slots__"] = fields
        namespace["__match_args__"] = fields
        return super().__new__(mcs, name, bases, namespace)


class Value(metaclass=_ValueType):
    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names = self._names()
        if not kwargs and len(args) == len(names):  # how the protocol builds them, once per frame
            for name, value in zip(names, args, strict=True):
                object.__setattr__(self, name, value)
            return
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes {len(names)} arguments, got {len(args)}")
        values = dict(zip(names, args, strict=False))  # fewer args than fields: checked below
        for name, value in kwargs.items():
            if name not in names or name in values:
                raise TypeError(f"{type(self).__name__}: unexpected or repeated argument {name!r}")
            values[name] = value
        if len(values) != len(names):
            missing = [n for n in names if n not in values]
            raise TypeError(f"{type(self).__name__}: missing {', '.join(missing)}")
        for name in names:
            object.__setattr__(self, name, values[name])

    def _names(self) -> tuple[str, ...]:
        names: tuple[str, ...] = type(self).__slots__
        return names

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._names())

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._names())
        return f"{type(self).__name__}({fields})"

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: {type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: {type(self).__name__} is immutable")
