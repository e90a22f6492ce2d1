"""`python -m golf.submit DIR ...`: golf/submit/command.py."""

import sys

from golf.submit.command import main

if __name__ == "__main__":
    sys.exit(main())
