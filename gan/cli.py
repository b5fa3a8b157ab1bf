"""What every command-line entry point shares: logging set-up and turning user errors into messages."""

from __future__ import annotations

import logging
import sys
from typing import Callable

from gan import GanError


class _TqdmHandler(logging.Handler):
    """Log lines that do not break a running progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        return f"{record.levelname.lower()}: {msg}" if record.levelno >= logging.WARNING else msg


def setup_logging(level: int = logging.INFO) -> None:
    logger = logging.getLogger("gan")
    if not any(isinstance(h, _TqdmHandler) for h in logger.handlers):
        handler = _TqdmHandler()
        handler.setFormatter(_Formatter())
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def tune_allocator() -> None:
    """Inference entry points: let glibc's malloc serve blocks up to 256 MB from its heap (and keep up to 128 MB
    free there) instead of returning each big tensor to the system when it is freed (its default above 32 MB).
    Translating a big image in bands allocates and frees tensors of tens of MB thousands of times; without this,
    every allocation page-faults fresh memory in (measured: 40% of a 12-megapixel run's time spent in the
    kernel). Process-wide, so only entry points call it; a no-op where the C library is not glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        libc.mallopt(m_mmap_threshold, 256 << 20)
        libc.mallopt(m_trim_threshold, 128 << 20)
    except (OSError, AttributeError):
        pass


def add_threads_option(parser) -> None:
    """--threads, for every entry point that computes (train.py takes the config key train.threads)."""
    parser.add_argument("--threads", type=int, default=0, metavar="N",
                        help="CPU compute threads; 0 (default) = the cores available to this process "
                             "(OMP_NUM_THREADS when set). 1 on a machine shared with other busy programs")


def run(main: Callable[[], int | None], threads: int | None = None) -> int:
    """Call `main` (after setting the compute threads, when given: see gan.cpus.use_threads); a GanError
    becomes `error: ...` on stderr and its exit status (2; 1 for a diverged run)."""
    setup_logging()
    try:
        if threads is not None:
            from gan.cpus import use_threads

            use_threads(threads)
        return main() or 0
    except GanError as e:
        _say(f"error: {e}")
        return e.exit_code
    except KeyboardInterrupt:
        _say("interrupted")
        return 130


def _say(text: str) -> None:
    """A last message on a line of its own, above any progress bar still drawn (tqdm.write knows them)."""
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr)
