"""`python -m tlcore ...`: the same as the `tlcore` command."""

from tlcore.cli.main import exit_process, main

if __name__ == "__main__":
    exit_process(main())
