"""Errors that golf reports to a person as one clear paragraph, exit code 2, no traceback."""


class GolfError(Exception):
    """Bad input (config, file or value): the message names it and says what is allowed."""

    exit_code = 2


class ConfigError(GolfError):
    """A config key has a value that is not allowed; raised before any work is done."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}")


class DataError(GolfError):
    """A shard, tokenizer or corpus file is missing, malformed or inconsistent; the message names the file."""
