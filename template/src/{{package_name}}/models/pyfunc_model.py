"""The logged MLflow model: raw feature rows in, positive-class probabilities out.

MLflow executes this file to build the model ("models from code"), when it is logged and
whenever it is loaded. It imports only mlflow, torch, numpy, pandas and `preprocessing`
(the data/preprocessing.py module, logged next to it as code), so the model loads without
Lightning, Hydra or this project's package installed.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.pyfunc.model import PythonModel, PythonModelContext


class TabularClassifier(PythonModel):
    def load_context(self, context: PythonModelContext) -> None:
        from preprocessing import Preprocessor  # on sys.path only inside a loaded model

        self.preprocessor = Preprocessor.load(context.artifacts["preprocessing"])
        self.network = torch.export.load(context.artifacts["network"]).module()

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: Any = None
    ) -> np.ndarray:
        features = torch.from_numpy(self.preprocessor.transform(model_input))
        with torch.inference_mode():
            probabilities: np.ndarray = torch.sigmoid(self.network(features)).numpy()
        return probabilities


mlflow.models.set_model(TabularClassifier())
