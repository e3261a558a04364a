"""Central views of the main window: run view, compare view and the artifact viewers."""
