"""The command line: typer's app, one module per command group, the shared options. The only folder that knows
typer.
"""
