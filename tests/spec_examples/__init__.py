"""The specification's code examples, as written (``tests/test_spec_examples.py`` runs them)."""
