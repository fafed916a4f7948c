"""``python -m kdutils.report``: see :mod:`kdutils.report.cli`."""

import sys

from kdutils.report.cli import main

sys.exit(main())
