"""`python -m cfftui` is the `cfftui` command."""

from cfftui.cli import main

raise SystemExit(main())
