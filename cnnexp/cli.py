"""What the entry points share: user errors become one `error: ...` line and exit status 2.

`python -m cnnexp`, `python -m cnnexp.evaluate` (and any other entry point) call `run_cli(main)`. An error that is
the user's input (a `CnnexpError`, a bad override, an unknown config option such as `data=nope`, a value of the
wrong type) prints a short message without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from cnnexp.errors import CnnexpError

EXIT_USER_ERROR = 2


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
        if isinstance(err, (MissingConfigException, OverrideParseException)):
            return _strip_search_path(str(err))
    for err in chain:
        if isinstance(err, (ConfigCompositionException, OmegaConfBaseException)):
            return _strip_search_path(str(err))
    return None


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
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
