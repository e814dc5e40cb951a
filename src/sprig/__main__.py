from __future__ import annotations

from sprig.cli.main import main

raise SystemExit(main())
