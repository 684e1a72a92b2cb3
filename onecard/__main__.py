"""`python -m onecard` is `onecard`."""

import sys

from onecard.cli import main

sys.exit(main())
