"""``python -m flows.cli``: the same as the ``kpe`` command."""

from flows.cli import main

main()
