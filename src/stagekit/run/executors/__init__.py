"""Executors run ready stages. The built-in ones register through ``stagekit_register_executors``."""
