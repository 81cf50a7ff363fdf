# Minimal local stubs for the parts of mlflow this project uses (MLflowLogger and its tests).
__version__: str
