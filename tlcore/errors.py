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


class DamagedRunError(InputError):
    """A file of a run folder cannot be read as tlcore wrote it (not JSON, not UTF-8, or the wrong shape).

    The run is damaged, not the app: pages and listings show it as one line
    ("damaged: its config.json is not valid JSON") and go on with the other runs.

    Attributes:
        run_dir: the run folder.
        file_name: the damaged file's name (`config.json`).
        reason: what is wrong with it, in words ("holds a list where an object was expected").
    """

    def __init__(self, run_dir, file_name: str, reason: str, fix: str | None = None):
        self.run_dir = run_dir
        self.file_name = file_name
        self.reason = reason
        name = getattr(run_dir, "name", None) or str(run_dir)
        fix = fix or (f"Delete that training (All trainings, on the Export page, or its folder), or put back a good "
                      f"copy of its {file_name}")
        super().__init__(f"training {name} is damaged: {self.short}. {fix}.")

    @property
    def short(self) -> str:
        """The one-line reason shown beside the run: "its config.json is not valid JSON"."""
        return f"its {self.file_name} {self.reason}"


class PicturesGoneError(InputError):
    """The pictures a run was checked on are gone (its dataset folder was moved or cleared)."""
