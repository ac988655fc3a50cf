"""The ``hub`` command-line interface (typer), split by command group."""
