"""`python -m gan.zoo ...`: the command lives in gan.commands.zoo."""

import sys

from gan.commands.zoo import main

if __name__ == "__main__":
    sys.exit(main())
