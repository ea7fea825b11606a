"""``python -m prollytree.cli`` runs ``git-prolly``."""

from .main import main

if __name__ == "__main__":  # pragma: no cover
    main()
