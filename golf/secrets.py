"""Secrets from the environment: which variables hold them, and their values redacted from anything golf writes or
sends (docs/reliability.md). No torch here: the config checks and the command line use it before anything runs."""

from __future__ import annotations

import os
import re
from typing import Any, Optional

# Environment variables whose values are secrets (WANDB_API_KEY, HF_TOKEN, AWS_SECRET_ACCESS_KEY, ...): their values
# never reach the run directory or W&B, whatever route they take (an ${oc.env:...} interpolation, a shell-expanded
# override, an error message, a git diff), whatever their length. A name is secret when one of its _-separated words
# is one of these (so TOKENIZERS_PARALLELISM is not, and neither is PWD).
SECRET_WORDS = frozenset({"KEY", "APIKEY", "TOKEN", "TOKENS", "SECRET", "SECRETS", "PASSWORD", "PASSWD", "PASSPHRASE",
                          "CREDENTIAL", "CREDENTIALS", "AUTH"})
# values that switch something on or off are settings, not secrets: replacing them would garble every file
FLAG_VALUES = frozenset({"", "0", "1", "true", "false", "yes", "no", "on", "off", "none", "null"})
SHORT_SECRET = 4  # shorter values are replaced only where they stand alone, not inside other words and numbers


def is_secret_name(name: str) -> bool:
    return any(word in SECRET_WORDS for word in name.upper().split("_"))


def secrets_in_environment(environ: Optional[dict[str, str]] = None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    return {name: value for name, value in environ.items()
            if is_secret_name(name) and value.strip().lower() not in FLAG_VALUES}


def redact(obj: Any, secrets: Optional[dict[str, str]] = None) -> Any:
    """`obj` (plain dicts, lists, strings, numbers) with every secret value replaced by <redacted $NAME>."""
    secrets = secrets_in_environment() if secrets is None else secrets
    if not secrets:
        return obj
    if isinstance(obj, str):
        for name, value in sorted(secrets.items(), key=lambda item: -len(item[1])):
            if len(value) >= SHORT_SECRET:
                obj = obj.replace(value, f"<redacted ${name}>")
            else:
                obj = re.sub(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", f"<redacted ${name}>", obj)
        return obj
    if isinstance(obj, dict):
        return {redact(k, secrets): redact(v, secrets) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact(v, secrets) for v in obj)
    return obj


def secret_in(text: str, secrets: Optional[dict[str, str]] = None) -> Optional[str]:
    """The name of the environment variable whose secret value `text` carries, or None."""
    return next((name for name, _ in (secrets_in_environment() if secrets is None else secrets).items()
                 if redact(text, {name: _}) != text), None)
