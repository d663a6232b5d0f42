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
