"""`python -m gan.evaluate ...`: the command lives in gan.commands.evaluate."""

import sys

from gan.commands.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
