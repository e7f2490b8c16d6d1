"""An async registry client on aiohttp, used by the CLI, builds, releases and tests."""
