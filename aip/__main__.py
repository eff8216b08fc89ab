"""``python -m aip`` runs the CLI (used by ``torchrun -m aip``)."""

from aip.cli import main

if __name__ == "__main__":
    main()
