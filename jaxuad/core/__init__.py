"""What every stage shares and no stage owns: jaxuad's error family, atomic file and
folder writing, and signals held until a safe point. Imports nothing else of jaxuad."""

from jaxuad.core.errors import CheckpointError, ConfigError, DataError, JaxuadError

__all__ = ["CheckpointError", "ConfigError", "DataError", "JaxuadError"]
