"""``python -m examples.housing_system``: see ``run.main``."""

from examples.housing_system.run import main

raise SystemExit(main())
