"""Stage select: copy the winner to models/best, write metrics/best.json, register it as `champion` in MLflow and
record the paired verdict on its run (facemask.pipeline.selection chooses). Under the CI runner (HOLD_CHAMPION)
it registers the winner but leaves `champion` to the runner, which moves it only after the gate, on main."""
import contextlib
import os
import shutil

import mlflow
from mlflow import MlflowClient

from facemask.core.files import read_json, write_json
from facemask.core.outputs import BEST_DIR, BEST_METRICS, SELECTION_REPORT, model_dir
from facemask.core.params import load_params
from facemask.core.stage import require, run
from facemask.pipeline.selection import best_metrics, choose, load_candidates, summary
from facemask.store.registry import CHAMPION, HOLD_CHAMPION
from facemask.store.tracking import configure, run_tags, start_run


def registered_version(client: MlflowClient, model_name: str, run_id: str, model_uri: str) -> str | None:
    """The newest version of `model_name` that already is this logged model (select re-ran and chose the same
    one): reused, so that the registry never holds one model twice."""
    same = [int(v.version) for v in client.search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
            if v.source == model_uri]
    return str(max(same)) if same else None


def register(winner: str, model_name: str, move_champion: bool) -> str:
    """Register the winner's logged model (its version if it has one; logged anew if its run is not in this store)
    and, with `move_champion`, alias it champion. A new version whose alias cannot be set is deleted again: the
    registry never holds a half-registered winner."""
    configure()
    record = read_json(require(model_dir(winner) / "mlflow.json", f"train@{winner}"))
    client = MlflowClient()
    try:
        mlflow.get_run(record["run_id"])
        model_uri = record["model_uri"]
        existing = registered_version(client, model_name, record["run_id"], model_uri)
    except mlflow.exceptions.MlflowException:
        from facemask.use.pyfunc import log_model  # TensorFlow, loaded only when the model must be logged anew

        with mlflow.start_run(run_name=f"select-{winner}", tags=run_tags(winner, "select")):
            model_uri, existing = log_model(BEST_DIR / "model.keras"), None
    version = existing or mlflow.register_model(model_uri, model_name).version
    if not move_champion:
        return str(version)
    try:
        client.set_registered_model_alias(model_name, CHAMPION, version)
    except mlflow.exceptions.MlflowException:
        if not existing:
            with contextlib.suppress(mlflow.exceptions.MlflowException):  # no new version left that is not champion
                client.delete_model_version(model_name, version)
        raise
    return str(version)


def log_verdict(winner: str, run_id: str, best: dict) -> None:
    """The selection's verdict on the champion's MLflow run: tags verdict and rival, metrics wins, losses, p, CI."""
    configure()
    with start_run(winner, "select", run_id):
        mlflow.set_tags({"select_verdict": best["verdict"], "select_against": best["against"] or ""})
        if "wins" in best:
            mlflow.log_metrics({"select_wins": best["wins"], "select_losses": best["losses"],
                                "select_p_value": best["p_value"], "select_delta": best["delta"],
                                "select_delta_ci95_low": best["delta_ci95"][0],
                                "select_delta_ci95_high": best["delta_ci95"][1]})


def main() -> None:
    all_params = load_params()
    params = all_params.select
    candidates = load_candidates(list(all_params.candidates))
    choice = choose(candidates, params.metric, all_params.ci.alpha)
    result = summary(candidates, choice)
    winner = choice["winner"]
    shutil.rmtree(BEST_DIR, ignore_errors=True)
    BEST_DIR.mkdir(parents=True)
    shutil.copyfile(model_dir(winner) / "model.keras", BEST_DIR / "model.keras")
    record = read_json(model_dir(winner) / "mlflow.json")
    result["run_id"] = record["run_id"]
    write_json(BEST_DIR / "champion.json", {"candidate": winner, **record})
    if choice["value"] >= params.threshold:
        move = not os.environ.get(HOLD_CHAMPION)
        version = register(winner, params.model_name, move)
        result["registered"] = {"name": params.model_name, "version": version, "alias": CHAMPION if move else None}
        if not move:
            result["why"] += f"; registered as version {version}, `champion` held ({HOLD_CHAMPION})"
    else:
        result["registered"] = None
        result["why"] += f"; not registered: {choice['value']:.4f} < select.threshold={params.threshold}"
    write_json(SELECTION_REPORT, result)
    write_json(BEST_METRICS, best_metrics(result))
    log_verdict(winner, record["run_id"], best_metrics(result))
    print(f"select: {winner} - {result['why']}")


if __name__ == "__main__":
    run(main, "select")
