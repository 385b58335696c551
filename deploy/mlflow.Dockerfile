# The tracking server image: MLflow at the version the pipeline pins, with the PostgreSQL driver, boto3 for S3 and
# Flask-WTF for the basic-auth app (versions as in pyproject.toml).
FROM python:3.11-slim
RUN pip install --no-cache-dir "mlflow==3.17.2" "psycopg[binary]==3.3.9" "boto3==1.44.5" "Flask-WTF==1.3.0"
EXPOSE 5000
