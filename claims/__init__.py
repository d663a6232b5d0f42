"""Claims: one module per paper claim, declared as data. Every module here is loaded by the runner."""
