"""How hard is the embedded synthetic dataset? MFCC statistics + RBF SVM, grouped 5-fold CV.

    python benchmarks/synthetic_baseline.py --out baseline.json [--clips-per-class 40]

Writes ``{"mfcc_svm_accuracy": mean, "fold_accuracies": [...], ...}``. The set is meant to be
learnable but not trivial: this classic baseline should stay well under 100%.
"""
import argparse
import json
import tempfile
import time

import numpy as np
import soundfile
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from soundsweep.catalog import synthetic
from trainables.baselines import mfcc_statistics


def baseline(clips_per_class: int, seed: int, folds: int = 5) -> dict:
    with tempfile.TemporaryDirectory() as root:
        manifest = synthetic.generate(root, seed=seed, clips_per_class=clips_per_class)
        features = []
        for path in manifest["path"]:
            audio, rate = soundfile.read(path, dtype="float32")
            features.append(mfcc_statistics(audio, rate))
    model = make_pipeline(StandardScaler(), SVC(C=8.0, kernel="rbf"))
    scores = cross_val_score(model, np.stack(features), manifest["label"].to_numpy(dtype=object),
                             groups=manifest["group"].to_numpy(dtype=object), cv=GroupKFold(folds))
    return {"mfcc_svm_accuracy": float(scores.mean()), "fold_accuracies": scores.tolist(),
            "clips": len(manifest), "classes": int(manifest["label"].nunique()), "chance": 1 / manifest["label"].nunique()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--clips-per-class", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    result = baseline(args.clips_per_class, args.seed)
    result["seconds"] = time.perf_counter() - started
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
