"""golf: Hydra-configured experiments for the Parameter Golf challenge."""

from pathlib import Path

__version__ = "0.1.0"

# The repository root holds conf/ beside the package; golf is installed editable (`make`), so this resolves.
REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = REPO_ROOT / "conf"
