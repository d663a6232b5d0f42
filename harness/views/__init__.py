"""What people type and read: the command line, `harness plan` (cost), `show`, `export`, the
claim scaffold. The top floor: nothing imports it but the package entry points."""
