"""`python -m hib ...`: the CLI, as `accelerate launch -m hib ...` starts it in each process."""

import sys

from hib.cli import main

sys.exit(main())
