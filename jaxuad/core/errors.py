"""jaxuad's one family of user errors. Every command line turns a :class:`JaxuadError` into
``error: <file or setting>: <problem>`` and exit status 2; any other exception is a bug.

Research code catches every jaxuad input error with ``except jaxuad.JaxuadError``.
"""


class JaxuadError(ValueError):
    """Input jaxuad cannot use: a file, folder, setting or run. The message names it."""


class ConfigError(JaxuadError):
    """A config file, override or stored config.json that cannot be used."""


class DataError(JaxuadError):
    """An input file or folder that cannot be used; the message names it and the problem."""


class CheckpointError(DataError):
    """A run's checkpoint that cannot be read or does not match its run."""
