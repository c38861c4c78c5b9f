# The journey engine's command line, for the consumer service in docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY engine engine
COPY projections projections
COPY schemas schemas
COPY consumers consumers
COPY stores stores
COPY journey journey
RUN pip install --no-cache-dir .
RUN useradd --create-home journey
USER journey
ENTRYPOINT ["journey"]
CMD ["--help"]
