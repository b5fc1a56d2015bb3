"""`python -m colony` runs the CLI."""

from colony.cli import main

main()
