"""A named table of specs (models, methods, training schemes): one entry per name."""

from __future__ import annotations

from jaxuad.core.errors import ConfigError


class Registry(dict):
    """``name -> spec``, filled by :meth:`register` and read by :meth:`spec`.

    Args:
      kind: what the entries are, for messages ("model", "method").
      key: the config key that names an entry ("model.name"), for messages.
    """

    def __init__(self, kind: str, key: str):
        super().__init__()
        self.kind, self.key = kind, key

    def register(self, spec, *, replace: bool = False):
        """Adds ``spec`` under ``spec.name``; a name already taken is an error unless
        ``replace``. Returns ``spec``."""
        if spec.name in self and not replace:
            raise ValueError(f"{self.kind} {spec.name!r} is registered already")
        self[spec.name] = spec
        return spec

    def spec(self, name: str):
        """The entry ``name``, or :class:`ConfigError` listing the registered ones."""
        if name not in self:
            raise ConfigError(
                f"{self.key}: unknown {self.kind} {name!r}; registered: {', '.join(self)}"
            )
        return self[name]

    def table(self) -> str:
        """One line per entry: name, summary and source (for ``--help``)."""
        width = max(map(len, self), default=0)
        return "\n".join(f"  {n:<{width}}  {s.summary} ({s.paper})" for n, s in self.items())
