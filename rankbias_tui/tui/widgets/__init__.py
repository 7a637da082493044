"""Widgets of the terminal UI, grouped by what they show."""
