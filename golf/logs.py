"""golf's terminal messages go through Python `logging` (the "golf" logger and its children), so Hydra's settings
apply as Hydra users expect: `hydra.verbose=true` (or `hydra.verbose=golf`) adds golf's debug lines, and
`hydra/job_logging=<option>` chooses the handlers and the format. golf's own option, conf/hydra/job_logging/golf.yaml
(the default), prints each message as it is, above any progress bar, with "[job N] " in front of every line in a
parallel (joblib) multirun. train.log is golf's own file (golf.runs.RunDir), written whatever the logging setup.

Outside a Hydra job (a torchrun rank, golf called from Python, the tests) nothing configures logging; the first
message then gives the "golf" logger the same terminal handler (ensure_terminal), so the terminal looks the same.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from tqdm import tqdm

LOGGER_NAME = "golf"
PROGRESS_ENV = "GOLF_PROGRESS"  # "0": no progress bars (set in parallel jobs, whose bars would overwrite each other)


def get_logger(name: str = LOGGER_NAME) -> logging.Logger:
    return logging.getLogger(name if name == LOGGER_NAME or name.startswith(LOGGER_NAME + ".") else
                             f"{LOGGER_NAME}.{name}")


def parallel_job_number() -> int | None:
    """The job number when this process runs a job of a multirun under the joblib launcher (jobs side by side on one
    terminal), else None."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if not HydraConfig.initialized():
            return None
        hydra_cfg = HydraConfig.get()
        launcher = str(hydra_cfg.launcher.get("_target_", "")) if hydra_cfg.get("launcher") else ""
        if hydra_cfg.mode != RunMode.MULTIRUN or "joblib" not in launcher.lower():
            return None
        return int(hydra_cfg.job.num)
    except Exception:  # no Hydra job, or a config without these keys: not a parallel job
        return None


def job_prefix() -> str:
    number = parallel_job_number()
    return "" if number is None else f"[job {number}] "


def progress_allowed() -> bool:
    """Progress bars only at a terminal, and not where GOLF_PROGRESS=0 (parallel jobs, or the user's choice)."""
    return sys.stderr.isatty() and os.environ.get(PROGRESS_ENV, "1") != "0"


class TerminalHandler(logging.Handler):
    """Each record on stdout through tqdm.write, so it lands above a progress bar instead of through it; every line
    prefixed with "[job N] " in a parallel multirun."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            prefix = job_prefix()
            if prefix:
                text = "\n".join(prefix + line for line in text.splitlines())
            tqdm.write(text, file=sys.stdout)
        except Exception:  # logging's own policy: a broken handler reports itself, never raises into the job
            self.handleError(record)


class OthersQuiet(logging.Filter):
    """golf's records at any level; other libraries' only from WARNING on, unless the root logger is at DEBUG
    (hydra.verbose=true asks for everything)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == LOGGER_NAME or record.name.startswith(LOGGER_NAME + "."):
            return True
        return record.levelno >= logging.WARNING or logging.getLogger().level <= logging.DEBUG


def _prints(handler: logging.Handler) -> bool:
    return isinstance(handler, TerminalHandler) or type(handler) is logging.StreamHandler


def ensure_terminal() -> None:
    """Outside a Hydra job: give the "golf" logger golf's terminal handler (INFO), once, unless a handler that
    prints is already set up (by Hydra's job_logging, or by the program that called golf)."""
    golf = logging.getLogger(LOGGER_NAME)
    if any(_prints(h) for h in (*logging.getLogger().handlers, *golf.handlers)):
        return
    handler = TerminalHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    golf.addHandler(handler)
    if golf.level == logging.NOTSET:
        golf.setLevel(logging.INFO)


def file_is_logged(path: Path) -> bool:
    """Whether a logging handler already writes `path`: Hydra's own job_logging (hydra/job_logging=default) writes
    <job name>.log, which for golf.train is train.log; golf then leaves the file to it instead of doubling lines."""
    target = os.path.abspath(path)
    handlers = (*logging.getLogger().handlers, *logging.getLogger(LOGGER_NAME).handlers)
    return any(isinstance(h, logging.FileHandler) and h.baseFilename == target for h in handlers)
