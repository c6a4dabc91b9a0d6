"""The ``bastion`` command line: thin Typer commands, one module per command group."""
