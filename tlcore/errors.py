"""The small hierarchy of errors that tlcore raises on purpose.

Every message is written for a person who has never read a traceback: what was
given, what was expected, and how to fix it. The CLI turns an `InputError` into
exit code 2 with one `error:` line; the app shows it with `st.error`.
"""


class TlcoreError(Exception):
    """Base class of every error tlcore raises deliberately."""


class InputError(TlcoreError, ValueError):
    """The user gave something tlcore cannot use (a path, a file, an option).

    Also a `ValueError`, so plain Python callers can catch it the usual way.
    """


class WeightsUnavailableError(InputError):
    """Pretrained weights for a backbone are neither cached nor downloadable."""


class RunBusyError(InputError):
    """Another training run already holds the machine's training slot."""


class TrainingFailedError(TlcoreError):
    """Training ended in a state the user should know about (NaN loss, out of memory)."""


class SignInError(InputError):
    """A sign-in was refused: the name and password do not match, or there were too many failed tries."""


class QuotaExceededError(InputError):
    """A user has reached a limit the operator set (uploaded bytes, kept runs)."""


class NotAllowedError(InputError):
    """The signed-in user may not do this (a student asking for the teacher's view)."""
