"""What every entry point shares: Hydra composition with golf's schema, and one-paragraph errors with exit code 2.

Bad input (a config key, a file, a value) ends with a message naming it and what is allowed, exit code 2 and no
traceback. Anything else is a bug in golf and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, NoReturn

import hydra
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from golf import CONF_DIR
from golf.config import register_schema
from golf.errors import GolfError

USER_ERRORS = (GolfError, OmegaConfBaseException, HydraException)


def describe(err: BaseException) -> str:
    """One paragraph: what is wrong, where (the key or file), and that nothing was run."""
    if isinstance(err, GolfError):
        return f"golf: {err}"
    parts: list[str] = []
    keys: list[str] = []
    seen: BaseException | None = err
    while seen is not None:
        msg = _one_paragraph(str(seen)) or type(seen).__name__
        if msg not in parts:
            parts.append(msg)
        key = getattr(seen, "full_key", None)
        if key and key not in keys:
            keys.append(str(key))
        seen = seen.__cause__ or seen.__context__
    where = f" (key: {', '.join(keys)})" if keys else ""
    return "golf: invalid configuration" + where + ": " + " -- ".join(parts) + ". Nothing was run; see conf/ for the options."


def _one_paragraph(text: str) -> str:
    # Hydra and OmegaConf messages run over several lines; keep what a person needs, drop search paths and types.
    text = text.split("Config search path")[0]
    noise = ("full_key:", "reference_type", "object_type")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith(noise)]
    return " ".join(lines).rstrip(".")


def exit_with(err: BaseException) -> NoReturn:
    print(describe(err), file=sys.stderr)
    sys.exit(GolfError.exit_code)


MULTIRUN_FLAGS = ("-m", "--multirun")


def flags_first(args: list[str]) -> list[str]:
    """`golf.train sweep=x -m seed=1,2` as well as `golf.train -m ...`: Hydra's argparse stops reading overrides at
    a flag that comes after them, so the multirun flag is moved to the front."""
    flags = [a for a in args if a in MULTIRUN_FLAGS]
    return flags + [a for a in args if a not in MULTIRUN_FLAGS]


def run_hydra(task: Callable[[DictConfig], Any], config_name: str = "train") -> Any:
    """Run `task` under @hydra.main (so multirun, sweeps and launchers work), reporting bad input cleanly."""
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let exceptions reach us instead of Hydra's own exit(1) printer
    sys.argv[1:] = flags_first(sys.argv[1:])
    register_schema()
    main = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)(task)
    try:
        return main()
    except USER_ERRORS as err:
        exit_with(err)


def compose(overrides: list[str], config_name: str = "train") -> DictConfig:
    """Compose without running a job (no run directory): for commands such as `golf.data prepare`."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_schema()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=overrides)
