"""User-facing errors. The CLI turns any HarnessError into one line and a non-zero exit."""


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
