"""``python -m stagekit.cli``: the same as the ``stagekit`` command."""

import sys

from stagekit.cli import main

sys.exit(main())
