"""The `tlcore` command line: parses arguments, calls the packages, prints results.

May import every tlcore package; nothing imports it (the spare is given its
worker entry point instead of re-entering the command line).
"""
