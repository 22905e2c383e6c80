"""`python -m modelfleet.cli`, as the tests and the demo start it."""

import sys

from modelfleet.cli.main import main

sys.exit(main())
