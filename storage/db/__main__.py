"""`python -m storage.db check|backup ...` (storage.db.cli)."""

import sys

from storage.db.cli import main

sys.exit(main())
