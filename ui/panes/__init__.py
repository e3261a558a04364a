"""Docked panes of the main window: project tree, job builder, job monitor."""
