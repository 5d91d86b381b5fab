"""What the entry points share: user errors become one `error: ...` line and exit status 2.

`python -m cnnexp`, `python -m cnnexp.evaluate` (and any other entry point) call `run_cli(main)`. An error that is
the user's input (a `CnnexpError`, a bad override, an unknown config option such as `data=nope`, a value of the
wrong type) prints a short message without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from cnnexp.errors import CnnexpError

EXIT_USER_ERROR = 2
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR)


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and its chain of causes (`raise ... from ...` and implicit context), outermost first."""
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return chain


def user_error_message(exc: BaseException) -> str | None:
    """The message to show for a user error, or None when `exc` is a bug (keep the traceback).

    Hydra wraps errors raised while instantiating (`InstantiationException`) and composing
    (`ConfigCompositionException`); the innermost user error in the chain gives the clearest message.
    """
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    chain = _causes(exc)
    for err in chain:
        if isinstance(err, CnnexpError):
            return str(err)
    for err in chain:
        if (message := _os_error_message(err)) is not None:
            return message
    for err in chain:
        if isinstance(err, (MissingConfigException, OverrideParseException)):
            return _with_fix(_strip_search_path(str(err)))
    for err in chain:
        if isinstance(err, (ConfigCompositionException, OmegaConfBaseException)):
            return _with_fix(_strip_search_path(str(err)))
    return None


HYDRA_FIX = ("Fix: check the spelling of the key or option; `python -m cnnexp --help` lists the config groups and "
             "`python -m cnnexp --cfg job` prints the composed config (add a new key with +key=value).")


def _with_fix(message: str) -> str:
    """Hydra's and OmegaConf's messages, ending with a Fix like cnnexp's own."""
    return message if "Fix:" in message else f"{message}\n{HYDRA_FIX}"


def _os_error_message(err: BaseException) -> str | None:
    """A full disk or an unwritable folder (the user's machine, not a bug): one line naming the path and the fix.

    torch.save reports a failed write as a RuntimeError ("PytorchStreamWriter failed writing file ...: file write
    failed"), with or without the OSError in its chain; it is read as a full disk or an unwritable folder.
    """
    if isinstance(err, OSError) and err.errno in NO_SPACE:
        where = f" writing {err.filename}" if err.filename else ""
        return (f"no space left on the device{where} (errno {errno.errorcode[err.errno]}); the files written before are "
                f"intact. Fix: free space there, or write the runs elsewhere with paths.log_dir=<folder on another "
                f"disk>.")
    if isinstance(err, OSError) and err.errno in NOT_WRITABLE:
        return (f"cannot write {err.filename or 'a run file'}: {os.strerror(err.errno or 0)}. Fix: choose a folder "
                f"you can write to, e.g. paths.log_dir=outputs or hydra.run.dir=<writable folder>.")
    if isinstance(err, RuntimeError) and "file write failed" in str(err):
        return ("could not write a checkpoint: the disk is full or the folder is not writable (torch.save: file "
                "write failed); the files written before are intact. Fix: free space there, or write the runs "
                "elsewhere with paths.log_dir=<folder on another disk>.")
    return None


def log_to_run_file(message: str, exc: BaseException | None = None) -> None:
    """Write `message` (and `exc`'s full traceback) to the run's log file only, not to the console.

    Under Hydra the root logger has a FileHandler writing `<run>/<job name>.log`; outside Hydra this does nothing.
    The console shows the one `error: ...` line that `run_cli` prints.
    """
    root = logging.getLogger()
    record = logging.getLogger("cnnexp").makeRecord(
        "cnnexp", logging.ERROR, __file__, 0, message, (), (type(exc), exc, exc.__traceback__) if exc else None)
    for handler in root.handlers:
        if isinstance(handler, logging.FileHandler):
            try:
                handler.handle(record)
            except Exception:  # noqa: BLE001 - a full disk cannot take the log either
                pass


def exit_with_error(message: str) -> None:
    """Print `error: <message>` on stderr and exit with status 2."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USER_ERROR)


def _strip_search_path(message: str) -> str:
    """Hydra's messages end with the config search path: noise for a user who mistyped an option."""
    head, _, _ = message.partition("\nConfig search path:")
    return head.strip().replace("\n\t", "\n  ")


def run_cli(main: Callable[[], Any]) -> Any:
    """Run an entry point: user errors -> `error: <message>` on stderr and exit status 2.

    Hydra's own error printing is switched off (HYDRA_FULL_ERROR=1) so errors reach this handler; real bugs
    still show their full traceback.
    """
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    try:
        return main()
    except Exception as exc:  # noqa: BLE001 - re-raised unless it is a user error
        message = user_error_message(exc)
        if message is None:
            raise
        exit_with_error(message)
