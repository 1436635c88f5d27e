"""``python -m sktransfer demo``: the same as the ``sktransfer`` command."""

from ._demo import main

raise SystemExit(main())
