"""Bring your own Hugging Face Trainer: lrsearch chooses each trial, the Trainer trains it.

A tiny BERT built from code (no download) classifies generated token
sequences: is the first token greater than the last? The trial's
optimizer and schedule go to ``Trainer(optimizers=...)``; the callback
reports ``eval_accuracy`` after each epoch and stops training when pruned.

    pip install 'lrsearch[transformers]'
    export LRSEARCH_API_URL=http://127.0.0.1:8000 LRSEARCH_API_KEY=lrs_...   # a submit key
    python examples/transformers_trainer.py my-study --create   # once: submit the study
    python examples/transformers_trainer.py my-study            # on every machine
"""

from __future__ import annotations

import argparse
import math
import tempfile
from typing import Any

import numpy as np
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from lrsearch import Client
from lrsearch.client import ApiError
from lrsearch.integrations import transformers as lrs

DEFINITION = {
    "task": "external",
    "objective": {"metric": "accuracy", "direction": "maximize"},
    "budget": {"n_trials": 6, "max_epochs": 3},
    "sampler": {"type": "random", "seed": 0},
    "pruner": {"type": "successive_halving", "min_epochs": 1, "reduction_factor": 2},
    "search_space": {
        "schedules": ["step", "cosine", "cyclic", "plateau"],
        "optimizer": ["adamw"],
        "learning_rate": {"low": 1.0e-4, "high": 3.0e-2, "log": True},
        "batch_size": [16, 32],
        "warmup_epochs": 0,
    },
}
VOCAB, LENGTH = 16, 12


def make_data(n: int, seed: int) -> list[dict[str, Any]]:
    """Random token ids; the label says whether the first token is greater than the last."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (n, LENGTH), generator=gen)
    labels = (ids[:, 0] > ids[:, -1]).long()
    return [{"input_ids": ids[i], "labels": labels[i]} for i in range(n)]


def accuracy(prediction: Any) -> dict[str, float]:
    predicted = np.argmax(prediction.predictions, axis=-1)
    return {"accuracy": float((predicted == prediction.label_ids).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study")
    parser.add_argument("--create", action="store_true", help="submit the study first")
    args = parser.parse_args()
    client = Client()  # LRSEARCH_API_URL, LRSEARCH_API_KEY
    if args.create:
        try:
            client.create_study({"name": args.study, **DEFINITION})
        except ApiError as exc:
            if exc.status != 409:  # 409: it exists already, just run it
                raise
    train, val = make_data(320, 0), make_data(128, 1)
    study = client.study(args.study)
    for trial in study.trials():
        torch.manual_seed(trial.number)
        config = BertConfig(
            vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=LENGTH, num_labels=2,
            hidden_dropout_prob=trial.dropout,
        )  # fmt: skip
        model = BertForSequenceClassification(config)
        with tempfile.TemporaryDirectory() as output_dir:
            trainer = Trainer(
                model=model,
                args=TrainingArguments(
                    output_dir=output_dir,
                    num_train_epochs=trial.max_epochs,
                    per_device_train_batch_size=trial.batch_size,
                    eval_strategy="epoch",  # the trial reports once per epoch
                    save_strategy="no",
                    logging_strategy="no",
                    report_to="none",
                    use_cpu=True,
                    disable_tqdm=True,
                    seed=trial.number,
                ),
                train_dataset=train,
                eval_dataset=val,
                compute_metrics=accuracy,
                optimizers=lrs.trial_optimizers(
                    trial, model, steps_per_epoch=math.ceil(len(train) / trial.batch_size)
                ),
                callbacks=[lrs.LrsearchCallback(trial)],
            )
            trainer.train()
        lr = f"{trial.learning_rate:.3g}"
        print(f"trial {trial.number} {trial.state} {trial.schedule_type} lr={lr}")
    print("best:", study.best())


if __name__ == "__main__":
    main()
