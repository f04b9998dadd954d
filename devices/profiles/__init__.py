"""Shipped declarative device profiles (YAML); ``options: {profile: <name>}`` picks one."""
