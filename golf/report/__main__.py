"""`python -m golf.report DIR ...`: golf/report/command.py."""

import sys

from golf.report.command import main

if __name__ == "__main__":
    sys.exit(main())
