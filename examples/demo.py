"""loopml's main job: the end-to-end example, grown with each part of the loop.

1. Data (demo_data.py): NYC flights 2013 with their weather become a snapshot, get a
   contract, are validated and audited before any modelling.
2. Tracking (demo_tracking.py): scikit-learn models trained on bundled data, tracked as runs,
   compared with the CLI.

Run it with `make demo`, or `python examples/demo.py` inside the project's environment.
Everything it stores stays in ./.loopml/.
"""

from __future__ import annotations

import time

import demo_data
import demo_tracking


def banner(text: str) -> None:
    print(f"\n{'=' * 8} {text} {'=' * (70 - len(text))}", flush=True)


def main() -> None:
    started = time.perf_counter()
    banner("Data: snapshot, contract, validation, audit")
    demo_data.main(demo_tracking.show)
    banner("Tracking: runs, sweeps, lineage")
    demo_tracking.main()
    print(f"\nThe demo took {time.perf_counter() - started:.0f}s.")


if __name__ == "__main__":
    main()
