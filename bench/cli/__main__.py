"""``python -m bench.cli``: the same as ``kbench``."""
from bench.cli.main import main

raise SystemExit(main())
