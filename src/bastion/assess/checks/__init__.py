"""Built-in checks, one module per capability. Importing a module registers its checks."""
