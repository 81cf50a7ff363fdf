"""The specification's code examples, as written (``test_examples.py`` here runs them)."""
