"""HTTP surface: ``create_app`` wires use-cases to aiohttp handlers; nothing else picks drivers."""
