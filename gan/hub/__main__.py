"""`python -m gan.hub save|push ...`: the command lives in gan.commands.hub."""

import sys

from gan.commands.hub import main

if __name__ == "__main__":
    sys.exit(main())
