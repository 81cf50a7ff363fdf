# Local stubs for the part of scikit-learn the demo uses (it ships no py.typed).
