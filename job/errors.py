"""The runtime's error kinds, each tied to the exit code the CLI returns."""


class EtlError(Exception):
    """Base class; `exit_code` is what `etl-job` exits with."""

    exit_code = 1


class ConfigError(EtlError):
    """The configuration or the command line is wrong: fix it and rerun."""

    exit_code = 2


class InputError(EtlError):
    """The input cannot be read or parsed at all (missing file, bad encoding...)."""

    exit_code = 2


class RejectBudgetExceeded(EtlError):
    """More rows failed validation than the pipeline allows; nothing was committed."""

    exit_code = 1


class RunLocked(EtlError):
    """Another run of the same pipeline and interval holds the lock."""

    exit_code = 1


class LoadError(EtlError):
    """The database refused the load (unreachable, wrong table shape...)."""

    exit_code = 1


class StepFailed(EtlError):
    """A `python:` transform step raised: the user's code failed on this input."""

    exit_code = 1


def one_line(error: BaseException | str, limit: int = 300) -> str:
    """An exception (or text) as one line (its first), for messages that must stay one line."""
    lines = str(error).strip().splitlines()
    text = lines[0].strip() if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
