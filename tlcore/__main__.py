"""`python -m tlcore ...`: the same as the `tlcore` command."""

import sys

from tlcore.cli import main

if __name__ == "__main__":
    sys.exit(main())
