# The MLflow tracking server of deploy/platform/compose.yaml: PostgreSQL for runs and the registry,
# an S3-compatible store for artifacts, served through the tracking server (--serve-artifacts), so
# clients need no S3 credentials.
FROM python:3.11-slim
COPY mlflow-requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt \
    && useradd --no-log-init --create-home --uid 10001 mlflow
USER 10001
EXPOSE 5000
ENTRYPOINT ["mlflow", "server"]
