"""`python -m cce_upgrade_watch` is the same as the `cce-upgrade-watch` command."""

from cce_upgrade_watch.cli import main

raise SystemExit(main())
