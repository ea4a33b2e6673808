"""MLflow 3 logged models, the way a data scientist logs them (test helper).

Run with the pinned MLflow venv's python:
  python mlflow3_models.py log <tracking_uri>     -> JSON: what was logged, and the predictions
  python mlflow3_models.py predict <tracking_uri> <model_uri>...   -> JSON: predictions of each URI

`log` trains two scikit-learn classifiers on a fixed synthetic data set and
logs them with mlflow.sklearn.log_model(clf, name=...) (a LoggedModel, m-...):
"star-galaxy-separator" registered twice (versions 1 and 2, alias
"champion" on 2), "outlier-nb" (a naive Bayes classifier) not registered. The model's metrics
are logged against it and against a dataset, so the lineage has something
to carry. `predict` loads each URI from the given server and predicts the
same fixed inputs, so two servers can be compared.
"""
import json
import sys

import numpy as np


def data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] > 0).astype(int)
    return x, y


def log(uri):
    import mlflow
    import pandas as pd
    from mlflow.tracking import MlflowClient
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("star-galaxy")
    x, y = data()
    frame = pd.DataFrame(x, columns=["u_g", "g_r", "r_i", "i_z"])
    dataset = mlflow.data.from_pandas(frame.assign(label=y), name="sdss_sample", targets="label")
    out = {"models": {}, "runs": {}}
    client = MlflowClient()
    for round_, c in enumerate([0.1, 1.0]):
        with mlflow.start_run(run_name=f"logreg-c{c}") as run:
            mlflow.log_input(dataset, context="training")
            clf = LogisticRegression(C=c).fit(x, y)
            mlflow.log_param("C", c)
            info = mlflow.sklearn.log_model(
                clf, name="classifier", registered_model_name="star-galaxy-separator",
                input_example=frame.head(3).to_numpy(), params={"C": str(c), "solver": "lbfgs"},
            )
            mlflow.log_metric("accuracy", float(clf.score(x, y)), step=round_, model_id=info.model_id, dataset=dataset)
            mlflow.log_metric("train_loss", 0.5 - 0.1 * round_, step=0)
            out["models"][f"logreg-{round_ + 1}"] = info.model_id
            out["runs"][f"logreg-{round_ + 1}"] = run.info.run_id
    client.set_registered_model_alias("star-galaxy-separator", "champion", "2")
    with mlflow.start_run(run_name="outlier-nb") as run:
        tree = GaussianNB().fit(x, y)
        info = mlflow.sklearn.log_model(tree, name="outlier-nb")
        mlflow.log_metric("classes", 2, model_id=info.model_id)
        client.set_logged_model_tags(info.model_id, {"purpose": "outliers"})
        out["models"]["tree"] = info.model_id
        out["runs"]["tree"] = run.info.run_id
    out["predictions"] = predictions(uri, ["models:/star-galaxy-separator@champion", "models:/star-galaxy-separator/1", f"models:/{info.model_id}", f"runs:/{run.info.run_id}/outlier-nb"])
    return out


def predictions(uri, model_uris):
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    x, _ = data()
    result = {}
    for m in model_uris:
        model = mlflow.sklearn.load_model(m)
        result[m] = {"predict": model.predict(x).tolist(), "proba": np.round(model.predict_proba(x), 12).tolist()}
    return result


if __name__ == "__main__":
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    cmd, uri = sys.argv[1], sys.argv[2]
    result = log(uri) if cmd == "log" else predictions(uri, sys.argv[3:])
    sys.stdout.write(json.dumps(result) + "\n")
