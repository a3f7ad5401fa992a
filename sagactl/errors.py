"""Exit codes and the SagactlError hierarchy: the one place failures get their meaning.

Core code raises these; the CLI funnel (sagactl.cli.funnel) turns them into one line on
stderr and the exit code. Anything that is not a SagactlError is a bug and shows its
traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes, identical for every command (docs/errors.md documents them)."""

    OK = 0
    SAGA_FAILED = 1  # the saga ended failed, fully compensated
    USAGE = 2  # usage, input or definition error
    ATTENTION = 3  # needs an operator: compensation incomplete, stuck sagas found, redrive failures
    UNAVAILABLE = 4  # a dependency (database, SQS, a step's endpoint) could not be reached
    INTERRUPTED = 130  # interrupted; state saved, resumable

    @classmethod
    def worst(cls, codes: Iterable[int]) -> ExitCode:
        """The code a command that ended several ways exits with: needs attention (3) over
        unreachable (4) over failed (1) over success (0); usage (2) and interrupted (130)
        above all, the first of them winning. OK for no codes."""
        return cls(max(codes, key=_severity, default=cls.OK))


_SEVERITY = {ExitCode.OK: 0, ExitCode.SAGA_FAILED: 1, ExitCode.UNAVAILABLE: 2, ExitCode.ATTENTION: 3}


def _severity(code: int) -> int:
    return _SEVERITY.get(ExitCode(code), 4)


class SagactlError(Exception):
    """A failure the user can act on: a one-line message and an exit code."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message and, when there is one, what to do about it, on one line."""
        text = self.message if not self.hint else f"{self.message}; {self.hint}"
        return " ".join(text.split())


class UsageError(SagactlError):
    """Bad options or input (exit 2)."""

    exit_code = ExitCode.USAGE


class NotFoundError(UsageError):
    """A saga, step or file named by the user does not exist (exit 2)."""


class DefinitionError(UsageError):
    """One or more problems in saga definition files (exit 2).

    ``problems`` holds preformatted ``FILE:LINE:COL: message`` lines.
    """

    def __init__(self, problems: list[str]) -> None:
        count = len(problems)
        first = problems[0] if problems else "invalid definition"
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(f"{first}{more}")
        self.problems = problems


class NeedsAttentionError(SagactlError):
    """The operation stopped where an operator must look (exit 3)."""

    exit_code = ExitCode.ATTENTION


class LeaseHeldError(NeedsAttentionError):
    """Another process is driving this saga right now (exit 3)."""


class UnavailableError(SagactlError):
    """A dependency (database, SQS, participant endpoint) cannot be reached (exit 4)."""

    exit_code = ExitCode.UNAVAILABLE


class Interrupted(SagactlError):
    """The user interrupted; state is saved and the saga can be resumed (exit 130)."""

    exit_code = ExitCode.INTERRUPTED
