"""Names imported on first use, so registries and packages load without JAX."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def resolve(path: str):
    """The object ``module:name`` names."""
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def deferred(path: str, **fixed) -> Callable:
    """A callable that imports ``module:name`` on its first call and calls it with
    ``fixed`` keywords added (``keywords`` shows them, as on a ``functools.partial``)."""

    def call(*args, **kw):
        return resolve(path)(*args, **fixed, **kw)

    call.__qualname__ = f"{path}({', '.join(f'{k}={v!r}' for k, v in fixed.items())})"
    call.keywords = fixed
    return call


def module_getattr(package: str, table: dict[str, str]) -> Callable:
    """A module ``__getattr__`` for ``package`` that imports ``table[name]`` (a module)
    when ``name`` is first asked for."""

    def __getattr__(name: str):
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(table[name]), name)

    return __getattr__
