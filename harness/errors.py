"""User-facing errors. The CLI turns any HarnessError into one line and a non-zero exit.

Also which failures are whose: the user's input (HarnessError), the user's own interrupt (Interrupted),
the environment (`is_environment_error`: reported, never stored) or the experiment (a stored result).
See docs/errors.md.
"""
import contextlib


class HarnessError(Exception):
    """Base class for errors caused by user input (bad claim id, tier, config, data path)."""


class UnknownClaimError(HarnessError, KeyError):
    """A claim id that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(HarnessError, ValueError):
    """A config override, tier or seed count that does not fit the claim."""


class DataError(HarnessError, OSError):
    """A data path that is missing, unreadable or not in the expected format."""


class NumericalError(Exception):
    """A numerical failure inside one seed (an eigensolver that did not converge, a loss that
    diverged). Deliberately *not* a HarnessError: it is not the user's input, so the runner records
    it as that seed's `error` verdict with its reason and goes on with the other seeds and claims.
    """


def is_input_error(exc: BaseException) -> bool:
    """True for an error the user fixes (bad config, data path, claim id): the run stops with one
    line. False for everything else, which is a seed's `error` (a crash or a numerical failure)."""
    return isinstance(exc, HarnessError) and not isinstance(exc, NumericalError)


class TransientError(RuntimeError):
    """A failure of the environment met inside a seed (e.g. a sub-run it depends on hit a full disk):
    reported for this run, never stored as the seed's result (see `is_environment_error`)."""


class Interrupted(KeyboardInterrupt):
    """The user's own Ctrl-C or a SIGTERM, raised by the harness's signal handlers (harness.views.cli,
    harness.run.runner). A plain KeyboardInterrupt raised by a claim or an experiment is not one: it is
    that claim's or seed's error like any other exception (see `is_user_interrupt`)."""


def on_signal(signum, frame) -> None:
    """Signal handler for SIGINT / SIGTERM: raise Interrupted, which no user-code guard swallows."""
    raise Interrupted(f"signal {signum}")


def is_user_interrupt(exc: BaseException) -> bool:
    """True when `exc` is the user stopping the run (Ctrl-C, SIGTERM), which stops everything.

    Where the harness installed its handler (the command line, a seed worker), only Interrupted
    counts; a bare KeyboardInterrupt then came from user code. Where it did not (a library caller
    with Python's default SIGINT handler), any KeyboardInterrupt is taken as the user's.
    """
    import signal

    if isinstance(exc, Interrupted):
        return True
    if not isinstance(exc, KeyboardInterrupt):
        return False
    try:
        return signal.getsignal(signal.SIGINT) is signal.default_int_handler
    except ValueError:  # not the main thread of the main interpreter
        return True


def is_environment_error(exc: BaseException) -> bool:
    """True for a failure of the machine, not of the experiment: it is reported for this run and never
    stored as the seed's result, so the next run tries the seed again.

    Environment (transient): OSError (a full disk, a read-only cache, a network error: not a
    DataError, which is the user's input), MemoryError, CUDA out of memory, a worker process that died.
    Experiment (a result, stored): NumericalError, a diverged run, any other exception from the
    experiment's code (a bug stays a bug until its code, and so its cache key, changes).
    """
    if isinstance(exc, HarnessError):
        return False
    if isinstance(exc, (OSError, MemoryError, TransientError)):
        return True
    return is_device_out_of_memory(exc)


def is_device_out_of_memory(exc: BaseException) -> bool:
    """True for torch's out-of-memory error (torch.OutOfMemoryError, which torch.cuda.OutOfMemoryError
    names) or a RuntimeError that says "out of memory" (older torch, other backends); not for MemoryError,
    the host's. A seed that hits it on a GPU it shares may fit alone (harness.run.parallel retries it)."""
    try:
        import torch

        oom = getattr(torch.cuda, "OutOfMemoryError", None) or getattr(torch, "OutOfMemoryError", None)
    except ImportError:  # pragma: no cover - torch is a dependency
        oom = None
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def describe(exc: BaseException) -> str:
    """'Type: first line of the message' (one line, for an error record or a status)."""
    if isinstance(exc, SystemExit):
        return f"SystemExit: user code called sys.exit({exc.code!r})"
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def seed_failure(exc: BaseException) -> tuple[str, bool]:
    """What an exception raised by an experiment makes of its seed: (error, transient).

    Anything user code raises (SystemExit, a KeyboardInterrupt it raised itself, any BaseException)
    is the seed's error, so no experiment can end the run or choose its exit code. Re-raised: an
    input error (the user fixes it; nothing is recorded) and the user's own Ctrl-C / SIGTERM.
    transient: an error of the environment (`is_environment_error`), which is not stored.
    """
    if is_input_error(exc) or is_user_interrupt(exc):
        raise exc
    transient = is_environment_error(exc)
    error = describe(exc) if isinstance(exc, SystemExit) else f"{type(exc).__name__}: {exc}"
    if transient:
        error = f"{error} (an error of the environment: not stored, retried by the next run)"
    return error, transient


@contextlib.contextmanager
def own_sigint():
    """While a command runs, Ctrl-C raises Interrupted, so a KeyboardInterrupt that user code raises
    itself is told apart from the user's (`is_user_interrupt`); the handler before is restored."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, on_signal)
    try:
        yield
    finally:
        if before is not None:  # None: a handler not installed from Python, which we cannot restore
            signal.signal(signal.SIGINT, before)
