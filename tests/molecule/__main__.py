"""`python -m tests.molecule ROLE [COMMAND...]`: run a role's molecule scenario (default: test)."""

from __future__ import annotations

import sys

from tests.molecule import MoleculeSetupError, molecule_env, roles_with_scenarios, run_molecule


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        print(f"roles: {' '.join(roles_with_scenarios())}")
        return 0 if argv else 2
    try:
        return run_molecule(argv[0], argv[1:], molecule_env())
    except MoleculeSetupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
