"""Unit tests of the pure parts of shared/: key format, scopes, caching, problem documents."""
