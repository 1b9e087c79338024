"""Test helpers: servers, browsers, fixture writers and subprocess scripts the tests use (no tests here)."""
