"""`python -m refusaldata.cli`: the console script."""

from refusaldata.cli.entry import main

main()
