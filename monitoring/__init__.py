"""Polling coordinators, trap and sensor ingest, and the warning core."""
