"""gan: photo <-> painting translation (CycleGAN family) and style transfer in PyTorch.

The error classes live here, each with the exit status entry points give it, so every module can raise them
without importing the module that would otherwise own them (no import cycles through an exception).
"""

__version__ = "0.2.0"


class GanError(Exception):
    """An error the user can fix: entry points print its message, without a traceback, and exit 2."""

    exit_code = 2


class ConfigError(GanError):
    """A configuration problem, with the dotted path of the offending key in its message."""


class DivergenceError(GanError):
    """A loss became NaN or infinite; training stopped without saving the step. Exit status 1."""

    exit_code = 1


class ImageDecodeError(GanError):
    """A file that is not a readable image; the message names the file and the reason."""
