"""`python -m anvil_llvm`: the command line (cli.py)."""
from .cli import main

raise SystemExit(main())
