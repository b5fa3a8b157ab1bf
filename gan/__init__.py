"""gan: unpaired image-to-image translation (CycleGAN family) in PyTorch."""

__version__ = "0.1.0"


class GanError(Exception):
    """An error the user can fix: entry points print its message, without a traceback, and exit 2."""
