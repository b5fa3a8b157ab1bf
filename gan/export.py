"""`python -m gan.export ...`: the command lives in gan.commands.export."""

import sys

from gan.commands.export import main

if __name__ == "__main__":
    sys.exit(main())
