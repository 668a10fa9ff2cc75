"""User-facing errors.

Every mistake a user can make (a bad file, field, value or combination) raises a subclass of
:class:`HCSError` whose message names the file/field/value and what is allowed. The CLI prints
such errors as one line and exits with status 2, without a traceback; anything else is a bug and
keeps its traceback.
"""

__all__ = ["HCSError", "ConfigError", "FieldError", "DataError", "ModelError", "OutputError", "ResourceError"]


class HCSError(Exception):
    """A problem with the user's input, reported without a traceback."""


class ConfigError(HCSError, ValueError):
    """A malformed configuration (architecture, circuit, sweep spec) or argument value."""


class FieldError(ConfigError):
    """A configuration field out of its range, raised where a config is constructed; ``field``
    names it so that a loader can say where the value came from (a file or the command line)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class DataError(HCSError, FileNotFoundError):
    """A dataset that is missing, unreadable or does not fit."""


class ModelError(HCSError, ValueError):
    """A model file that is truncated, malformed, or inconsistent with its architecture."""


class OutputError(HCSError, OSError):
    """An output path that cannot be written, or whose writing would destroy data hcs-neuro did not
    create (a non-empty foreign folder, a folder where a file is expected, a read-only place)."""


class ResourceError(HCSError, MemoryError):
    """Work whose estimated memory or run time exceeds a limit; the message gives the estimate, the
    limit and how to raise it."""
