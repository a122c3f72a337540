"""`python -m tests.molecule ROLE [COMMAND...]`: run a role's molecule scenario (default: test).

`python -m tests.molecule --settings` prints the scenarios' settings as JSON (node image,
engine run flags, bundle); tests/molecule/create.yml reads them.
"""

from __future__ import annotations

import json
import sys

from tests.molecule import (
    MoleculeSetupError,
    molecule_env,
    roles_with_scenarios,
    run_molecule,
    scenario_settings,
)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        print(f"roles: {' '.join(roles_with_scenarios())}")
        return 0 if argv else 2
    try:
        if argv[0] == "--settings":
            print(json.dumps(scenario_settings()))
            return 0
        return run_molecule(argv[0], argv[1:], molecule_env())
    except MoleculeSetupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
