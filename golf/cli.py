"""What every entry point shares: Hydra composition with golf's schema, and one-paragraph errors with exit code 2.

Bad input (a config key, a file, a value) ends with a message naming it and what is allowed, exit code 2 and no
traceback. Anything else is a bug in golf and keeps its traceback.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import sys
from typing import Any, Callable, NoReturn

import hydra
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from golf import CONF_DIR
from golf.config import NAME_ALLOWED, SAFE_NAME, register_schema
from golf.errors import ConfigError, GolfError, is_write_error, output_error
from golf.secrets import is_secret_name, redact, secret_in, secrets_in_environment

USER_ERRORS = (GolfError, OmegaConfBaseException, HydraException)
# overrides whose value becomes a directory name under paths.root (name defaults to ${model.name})
NAME_KEYS = ("name", "model.name", "data.name")


def describe(err: BaseException) -> str:
    """One paragraph: what is wrong, where (the key or file), and that nothing was run."""
    if isinstance(err, GolfError):  # one line even when the message quotes another program's output
        return "golf: " + " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    parts: list[str] = []
    keys: list[str] = []
    seen: BaseException | None = err
    while seen is not None:
        msg = _one_paragraph(str(seen)) or type(seen).__name__
        if msg not in parts and "$VALUE" not in msg:  # OmegaConf's unformatted duplicate of the message before
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
    if is_write_error(err):  # a folder golf cannot write (permission, read-only, disk full): name it
        err = output_error(err)  # type: ignore[arg-type]
    print(describe(err), file=sys.stderr)
    sys.exit(GolfError.exit_code)


def _groups() -> set[str]:
    return {p.name for p in CONF_DIR.iterdir() if p.is_dir()}


def check_overrides(args: list[str]) -> None:
    """What Hydra would not report cleanly, refused before it composes (or makes a run directory): an override
    without a key, a config group given something other than option names (`model=[1,2]`, `model=null`), and a
    name that would put a directory outside paths.root (`name=../x`).
    A malformed override is named with the parser's reason; arguments that are not overrides (flags and their
    values) are left to Hydra."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    groups = None
    for arg in args:
        if arg.startswith("-"):
            continue
        try:
            (override,) = parser.parse_overrides([arg])
        except (OverrideParseException, ValueError) as err:
            if "=" not in arg:  # not an override: the value of a flag such as `-cn NAME`, or Hydra's to report
                continue
            key = arg.split("=", 1)[0].lstrip("+~") or "override"
            reason = _one_paragraph(str(err)).replace(f"Error parsing override '{arg}' ", "")
            raise ConfigError(key, f"{arg!r} is not a valid override: {reason}; write key=value, "
                                   "quoting a value with spaces or special characters (key='a value')") from None
        key = override.key_or_group
        if not key:
            raise ConfigError("override", f"{arg!r} names no setting; write key=value (e.g. model=tiny or "
                                          "train.iterations=100)")
        if groups is None:
            groups = _groups()
        if override.value_type == ValueType.ELEMENT:
            values = [override.value()]
        elif override.value_type in (ValueType.CHOICE_SWEEP, ValueType.SIMPLE_CHOICE_SWEEP):
            values = list(override.value().list)
        elif override.value_type == ValueType.RANGE_SWEEP:
            values = list(override.sweep_iterator())
        else:
            values = []
        if key in groups or "/" in key:  # a config group: its value names an option file
            # Hydra takes an option name, a list of them, or a dict (merged as values); anything else is a traceback
            # (`~group` alone has no value; `group=null` is a traceback inside Hydra)
            names = [x for v in values for x in (v if isinstance(v, list) else [v]) if not isinstance(v, dict)]
            numeric_sweep = override.value_type in (ValueType.RANGE_SWEEP, ValueType.INTERVAL_SWEEP)
            if numeric_sweep or any(not isinstance(v, str) for v in names):
                options = sorted(p.stem for p in (CONF_DIR / key).glob("*.yaml"))
                raise ConfigError(key, f"is a config group: it takes an option name ({', '.join(options) or 'NAME'}), "
                                       f"not {arg.split('=', 1)[1]}; for several runs use -m {key}=A,B")
        if override.is_delete():
            continue
        if key.lstrip("+~") in NAME_KEYS:
            for value in values:
                text = str(value)
                # an interpolation is checked once resolved (golf.config.validate)
                if value is not None and "${" not in text and not SAFE_NAME.match(text):
                    raise ConfigError(key, f"{text!r} is not allowed; allowed: {NAME_ALLOWED} (it names a "
                                           "directory under paths.root)")


# overrides whose value ends up in a directory's name or path: a secret there cannot be redacted, so it is refused
DIR_KEYS = (*NAME_KEYS, "paths.root", "hydra.run.dir", "hydra.sweep.dir", "hydra.sweep.subdir", "hydra.job.name")
_ENV_REFERENCE = re.compile(r"oc\.env\s*:\s*([A-Za-z_][A-Za-z0-9_]*)")


def protect_secrets(args: list[str]) -> list[str]:
    """The command line with each secret value of the environment (golf.runs.secrets_in_environment) replaced by an
    ${oc.env:NAME} interpolation, so that Hydra's own files (multirun.yaml, the overrides it records) hold the
    reference, never the value; the job resolves it as before. A secret headed for a directory name (name=...,
    hydra.run.dir=..., directly or through ${oc.env:...}) is refused: a path cannot be redacted."""
    secrets = secrets_in_environment()
    protected = []
    for arg in args:
        key, sep, value = arg.partition("=")
        bare = key.lstrip("+~")
        if arg.startswith("-") or not sep:
            protected.append(arg)
            continue
        if bare in DIR_KEYS:
            named = secret_in(value, secrets) or next(
                (n for n in _ENV_REFERENCE.findall(value) if is_secret_name(n)), None)
            if named is not None:
                raise ConfigError(bare, f"would put the value of the environment variable ${named} (a secret) into a "
                                        "directory name or path, where it cannot be redacted; choose a name without it")
        for name in sorted(secrets, key=lambda n: -len(secrets[n])):
            value = redact(value, {name: secrets[name]}).replace(f"<redacted ${name}>", f"${{oc.env:{name}}}")
        protected.append(f"{key}={value}")
    return protected


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
    main = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)(_reporting(task))
    try:
        sys.argv[1:] = protect_secrets(sys.argv[1:])  # before Hydra records the command line anywhere
        check_overrides(sys.argv[1:])  # before Hydra makes a run directory out of them
        return main()
    except USER_ERRORS as err:
        exit_with(err)
    except OSError as err:  # Hydra could not make the run directory: paths.root not writable, disk full
        if not (is_write_error(err) or _making_a_requested_dir(err, sys.argv[1:])):
            raise
        exit_with(output_error(err))


def _making_a_requested_dir(err: OSError, args: list[str]) -> bool:
    """A folder missing on the way to hydra.run.dir / hydra.sweep.dir that cannot be made (under /proc, ...)."""
    if err.errno != errno.ENOENT or not err.filename:
        return False
    wanted = [arg.partition("=")[2] for arg in args if arg.partition("=")[0] in ("hydra.run.dir", "hydra.sweep.dir")]
    return any(os.path.abspath(w).startswith(os.path.abspath(str(err.filename))) for w in wanted)


def _reporting(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """In a single run, bad input raised inside the job is reported here, before Hydra adds its own
    "Error executing job" line; in a multirun Hydra's launcher decides (a job's failure is its own)."""

    @functools.wraps(task)
    def job(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except Exception as err:
            from hydra.core.hydra_config import HydraConfig
            from hydra.types import RunMode

            single = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.RUN
            if single and (isinstance(err, USER_ERRORS) or is_write_error(err)):
                exit_with(err)
            raise

    return job


def compose(overrides: list[str], config_name: str = "train") -> DictConfig:
    """Compose without running a job (no run directory): for commands such as `golf.data prepare`."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    check_overrides(overrides)
    register_schema()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=overrides)
