"""Data stage: download, parse each source into canonical tables, and encode artifacts."""
