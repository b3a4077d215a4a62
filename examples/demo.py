"""loopml's main job: the end-to-end example, grown with each part of the loop.

1. Data (demo_data.py): NYC flights 2013 with their weather become a snapshot, get a
   contract, are validated and audited before any modelling.
2. Pipeline (demo_pipeline.py, flights_pipeline.py): the delay model trained as a tracked,
   cached pipeline (load → validate → features → temporal split → baseline and model →
   evaluation), run twice (the second time from the cache), then swept with Optuna; the
   first run's model is registered with its card and promoted through the gate.
3. The loop (demo_loop.py): the champion served over HTTP, March to December replayed month
   by month with their outcomes arriving at each month's end; every month monitored with
   alert rules, and a retraining policy left to retrain, gate, shadow, canary and promote by
   itself. Prints the monthly AUC of the static model, the looped system and a monthly
   oracle, and writes the HTML monitoring report.

Run it with `make demo`, or `python examples/demo.py` inside the project's environment.
Everything it stores stays in ./.loopml/.
"""

from __future__ import annotations

import time

import demo_data
import demo_loop
import demo_pipeline


def banner(text: str) -> None:
    print(f"\n{'=' * 8} {text} {'=' * (70 - len(text))}", flush=True)


def main() -> None:
    started = time.perf_counter()
    banner("Data: snapshot, contract, validation, audit")
    demo_data.main(demo_pipeline.show)
    banner("Pipeline: tracked steps, cache, sweep")
    demo_pipeline.main()
    banner("The loop: serve, monitor, alert, retrain, gate, shadow, canary, promote")
    demo_loop.main()
    print(f"\nThe demo took {time.perf_counter() - started:.0f}s.")


if __name__ == "__main__":
    main()
