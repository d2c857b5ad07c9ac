"""`python -m pytest_llmbias.standin`."""

from .cli import main

raise SystemExit(main())
