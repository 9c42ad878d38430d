"""Reference receiver for Tresor's recipient notices (see README.md here)."""
