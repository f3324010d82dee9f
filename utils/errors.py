"""The project's own exception types.

Every error a user can cause (a bad flag, a broken data file, an unreadable checkpoint) is raised as a
subclass of :class:`UserError` with a one-line message that says what was wrong and what was expected.
``run.py`` catches :class:`UserError` at the top, prints the message and exits with status 2, so users
never see a stack trace for their own mistakes. Programming errors stay ordinary exceptions.
"""


class UserError(Exception):
    """An error caused by the user's input; its message is shown as is, without a traceback."""

    exit_code = 2


class ConfigError(UserError):
    """An unknown dataset, an unknown config key, or a value of the wrong type or range."""


class DataError(UserError):
    """A data file that is missing, unsafe, malformed or inconsistent with the config."""


class CheckpointError(UserError):
    """A checkpoint that cannot be read, or that belongs to another configuration."""


class TrainingDivergedError(UserError):
    """A training loss became nan or inf; the message names the epoch, batch and loss term."""


def cli_exit(main, interrupted_hint: str = "") -> None:
    """Run a command-line ``main()`` and exit with its status; a :class:`UserError` becomes one line on
    stderr and its exit code (2), Ctrl-C a short note and status 130, never a traceback."""
    import sys

    try:
        sys.exit(main())
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print(f"interrupted{': ' + interrupted_hint if interrupted_hint else ''}", file=sys.stderr)
        sys.exit(130)
