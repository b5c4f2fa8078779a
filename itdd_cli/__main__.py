"""`python -m itdd_cli …` (also what `accelerate launch -m itdd_cli` runs)."""

from itdd_cli.cli.app import main

if __name__ == "__main__":
    main()
