"""The version of stagekit: one static string, read by the build and by ``stagekit --version``."""

__version__ = "0.1.0"


def version() -> str:
    return __version__
