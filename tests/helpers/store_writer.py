"""One of several processes writing the same results store at once (see test_store.py).

    python -m tests.helpers.store_writer URL WRITER TRIALS EPOCHS START_AT

Waits until the clock reaches START_AT so that the writers open the store and create the shared
experiment together, then writes TRIALS trials of EPOCHS epochs each, one transaction per call
as the Tune callback does, and prints one JSON line: the experiment id and the wall-clock times
(``time.time()``) at which this writer opened the store and made its last write, so the test can
check that the writers really wrote at the same time.
"""
import json
import sys
import time

from soundsweep.results import ResultsStore


def main(url: str, writer: str, trials: int, epochs: int, start_at: float) -> None:
    time.sleep(max(0.0, start_at - time.time()))
    started = time.time()
    store = ResultsStore(url)
    experiment = store.start_experiment("shared", "augmentation", "synthetic", {"writer": writer}, "/runs")
    for t in range(trials):
        trial_id = f"{writer}-{t}"
        store.record_trial(experiment, trial_id, status="RUNNING", params={"writer": writer, "t": t})
        for epoch in range(epochs):
            store.record_epoch(experiment, trial_id, epoch, {"val_clip_acc": epoch / epochs, "num_params": 7},
                               f"/runs/{trial_id}/checkpoint_{epoch}")
        store.record_trial(experiment, trial_id, status="COMPLETED")
    print(json.dumps({"experiment": experiment, "started": started, "finished": time.time()}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
