"""Screens of the terminal UI: dashboard, run detail, compare, launch, help."""
