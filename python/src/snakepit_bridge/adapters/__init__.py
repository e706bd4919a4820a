"""Adapters bundled with snakepit_bridge."""
