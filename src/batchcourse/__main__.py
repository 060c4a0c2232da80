"""`python -m batchcourse check NOTEBOOK`: the self-check, wherever the package is installed.

It needs no clone of the course: a learner with the installed package (and nbgrader) checks a notebook
as `python3 tasks.py check NOTEBOOK` does in the course folder.
"""

import argparse
import sys

from .cli import check


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m batchcourse")
    sub = parser.add_subparsers(dest="task", required=True)
    p = sub.add_parser("check", help="self-check a notebook (exit code 1 when a test fails)")
    p.add_argument("notebook")
    p.set_defaults(run=check)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
