"""Integrations with agent frameworks (each behind its extra): :mod:`.langgraph`."""
