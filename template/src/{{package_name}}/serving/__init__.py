"""Level 3 serving: the online model server (app.py), batch scoring (batch.py) and what both
share: the request schema, the lean model loader and the prediction log."""
