"""`python -m gateway` is `onecard`."""

import sys

from gateway.cli import main

sys.exit(main())
