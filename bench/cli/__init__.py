"""The ``kbench`` command line: thin subcommands that parse, call the pipeline and print; the only layer that exits."""
