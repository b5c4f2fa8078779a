"""Everything that renders (rich): tables, the progress line, the heat view and HTML page, the checkpoint table
and plot.
"""
