"""Reports: terminal tables, Markdown and JSON renderings of results."""
