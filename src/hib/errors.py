"""User-facing errors: one clear line, no traceback deep inside numpy.

The CLI catches `HibError` and prints `error: <message>`; anything else is a bug.
"""


class HibError(Exception):
    """Base of every error a user can cause (bad input, bad config, missing files)."""


class DataError(HibError):
    """A corpus, folder or audio file that cannot be used; the message names the file."""


class ConfigError(HibError):
    """A config file or override that does not fit the schema (unknown key, wrong type)."""


class UpstreamError(HibError):
    """A model that cannot be loaded or is not supported."""
