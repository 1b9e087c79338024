"""A name -> item registry, the shape every registry of named data shares (recipes, spaces)."""
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(dict, Generic[T]):
    """Items by their ``name``, filled by :meth:`register` as modules import; ``kind`` names what
    it holds in its errors ("unknown recipe 'x': choose one of ...")."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, item: T) -> T:
        if item.name in self:
            raise ValueError(f"{self.kind} {item.name!r} is registered twice")
        self[item.name] = item
        return item

    def names(self) -> list[str]:
        return sorted(self)

    def lookup(self, name: str) -> T:
        """The item ``name``; an unknown name raises ``KeyError`` naming the choices."""
        if name not in self:
            raise KeyError(f"unknown {self.kind} {name!r}: choose one of {', '.join(self.names())}")
        return self[name]
